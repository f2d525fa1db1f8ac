package breaker

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a monotonic clock that only tests move.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64              { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type transition struct {
	from, to State
	reason   string
}

// recorder collects onChange calls; safe for concurrent use.
type recorder struct {
	mu  sync.Mutex
	got []transition
}

func (r *recorder) onChange(from, to State, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, transition{from, to, reason})
}

func (r *recorder) all() []transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transition(nil), r.got...)
}

// last returns the latest transition, failing the test if there is none.
func (r *recorder) last(t *testing.T) transition {
	t.Helper()
	got := r.all()
	if len(got) == 0 {
		t.Fatal("no transition recorded")
	}
	return got[len(got)-1]
}

func newTestBreaker(t *testing.T, cfg Config) (*Breaker, *fakeClock, *recorder) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(int64(time.Hour)) // any origin: the breaker must not assume 0
	rec := &recorder{}
	return New(cfg, clk.now, rec.onChange), clk, rec
}

// call admits one call and records its outcome, failing the test if the
// breaker refuses it.
func call(t *testing.T, b *Breaker, success bool) {
	t.Helper()
	tk, ok := b.Allow()
	if !ok {
		t.Fatalf("Allow() refused in state %v", b.State())
	}
	b.Record(tk, success)
}

func wantState(t *testing.T, b *Breaker, want State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("State() = %v, want %v", got, want)
	}
}

func wantTransition(t *testing.T, rec *recorder, want transition) {
	t.Helper()
	if got := rec.last(t); got != want {
		t.Fatalf("last transition = %+v, want %+v", got, want)
	}
}

// consecutiveOnly disables the ratio trigger so that tests of the other
// rules are not disturbed by it.
func consecutiveOnly() Config {
	cfg := DefaultConfig()
	cfg.FailureRatio = 0
	return cfg
}

// tripOpen drives a closed breaker with the consecutive trigger to Open.
func tripOpen(t *testing.T, b *Breaker) {
	t.Helper()
	for range b.cfg.ConsecutiveFailures {
		call(t, b, false)
	}
	wantState(t, b, Open)
}

func TestBreaker_ConsecutiveFailuresTrip(t *testing.T) {
	b, _, rec := newTestBreaker(t, consecutiveOnly())
	for range 4 {
		call(t, b, false)
	}
	call(t, b, true) // a success breaks the run
	for range 4 {
		call(t, b, false)
	}
	wantState(t, b, Closed)
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d transitions before the fifth consecutive failure, want 0", n)
	}
	call(t, b, false)
	wantState(t, b, Open)
	wantTransition(t, rec, transition{Closed, Open, "5 consecutive failures"})
	if b.Admits() {
		t.Error("Admits() = true on a freshly opened breaker")
	}
	if _, ok := b.Allow(); ok {
		t.Error("Allow() admitted a call on a freshly opened breaker")
	}
}

func TestBreaker_OpenToHalfOpenToClosed(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)

	clk.advance(5*time.Second - 1)
	if b.Admits() {
		t.Fatal("Admits() = true 1ns before the open period ends")
	}
	if _, ok := b.Allow(); ok {
		t.Fatal("Allow() admitted 1ns before the open period ends")
	}
	clk.advance(1)
	if !b.Admits() {
		t.Fatal("Admits() = false once the open period ended")
	}
	wantState(t, b, Open) // Admits has no side effects

	// Three trials, one at a time: each is admitted only after the previous
	// one succeeded, and the third success closes.
	for i := range 3 {
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("trial %d refused after %d successes", i+1, i)
		}
		if i == 0 {
			wantState(t, b, HalfOpen)
			wantTransition(t, rec, transition{Open, HalfOpen, "open period 5s elapsed"})
		}
		if b.Admits() {
			t.Fatalf("Admits() = true with trial %d in flight", i+1)
		}
		if _, ok := b.Allow(); ok {
			t.Fatalf("Allow() admitted a second call with trial %d in flight", i+1)
		}
		wantState(t, b, HalfOpen)
		b.Record(tk, true)
	}
	wantState(t, b, Closed)
	wantTransition(t, rec, transition{HalfOpen, Closed, "3/3 trial RPCs succeeded"})
	if n := len(rec.all()); n != 3 {
		t.Errorf("%d transitions, want 3", n)
	}
	call(t, b, true) // closed again: admits
}

func TestBreaker_TrialFailureReopens(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)
	clk.advance(5 * time.Second)
	// A failure after earlier successes reopens too: successes are not
	// banked across the failure.
	t1, _ := b.Allow()
	b.Record(t1, true)
	t2, ok := b.Allow()
	if !ok {
		t.Fatal("second trial refused after the first succeeded")
	}
	b.Record(t2, false)
	wantState(t, b, Open)
	wantTransition(t, rec, transition{HalfOpen, Open, "trial RPC failed"})
	if b.Admits() {
		t.Fatal("Admits() = true right after a trial failed")
	}
	// The re-trip doubles the open period.
	clk.advance(10*time.Second - 1)
	if b.Admits() {
		t.Fatal("Admits() = true before the doubled open period ended")
	}
	clk.advance(1)
	if _, ok := b.Allow(); !ok {
		t.Fatal("Allow() refused once the doubled open period ended")
	}
	wantTransition(t, rec, transition{Open, HalfOpen, "open period 10s elapsed"})
}

// TestBreaker_BackoffGrowsAndCaps re-trips from half-open again and again
// and checks each open period: 5s doubling, capped at MaxOpenDuration.
func TestBreaker_BackoffGrowsAndCaps(t *testing.T) {
	cfg := consecutiveOnly()
	cfg.MaxOpenDuration = config.Duration(50 * time.Second)
	b, clk, rec := newTestBreaker(t, cfg)
	tripOpen(t, b)
	for i, want := range []time.Duration{5, 10, 20, 40, 50, 50, 50} {
		want *= time.Second
		clk.advance(want - 1)
		if b.Admits() {
			t.Fatalf("trip %d: open period shorter than %v", i+1, want)
		}
		clk.advance(1)
		call(t, b, false) // first trial fails
		wantTransition(t, rec, transition{HalfOpen, Open, "trial RPC failed"})
		prev := rec.all()[len(rec.all())-2]
		if wantReason := fmt.Sprintf("open period %v elapsed", want); prev.reason != wantReason {
			t.Fatalf("trip %d: reason %q, want %q", i+1, prev.reason, wantReason)
		}
	}
}

// TestBreaker_BackoffResetsAfterStayingClosed: closing keeps the backoff
// level, so an endpoint that flaps gets longer and longer open periods; after
// staying closed for MaxOpenDuration it starts over at OpenDuration.
func TestBreaker_BackoffResetsAfterStayingClosed(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	cycle := func(wantOpen time.Duration) {
		t.Helper()
		tripOpen(t, b)
		clk.advance(wantOpen - 1)
		if b.Admits() {
			t.Fatalf("open period shorter than %v", wantOpen)
		}
		clk.advance(1)
		for range 3 {
			call(t, b, true)
		}
		wantState(t, b, Closed)
	}
	cycle(5 * time.Second)
	cycle(10 * time.Second) // flapping: grows although it closed in between
	cycle(20 * time.Second)
	clk.advance(2*time.Minute - 1)
	cycle(40 * time.Second) // closed 1ns short of MaxOpenDuration
	clk.advance(2 * time.Minute)
	cycle(5 * time.Second) // closed for MaxOpenDuration: back to the base
	if n := len(rec.all()); n != 15 {
		t.Errorf("%d transitions, want 15", n)
	}
}

func TestBreaker_RatioTrigger(t *testing.T) {
	ratioOnly := func(minRequests int) Config {
		cfg := DefaultConfig()
		cfg.ConsecutiveFailures = 0
		cfg.MinRequests = minRequests
		return cfg
	}

	t.Run("below min volume", func(t *testing.T) {
		b, _, rec := newTestBreaker(t, ratioOnly(20))
		// 19 outcomes, 10 of them failures (53%): not enough volume.
		for i := range 19 {
			call(t, b, i%2 == 1)
		}
		wantState(t, b, Closed)
		call(t, b, false) // 20th: 11/20
		wantState(t, b, Open)
		wantTransition(t, rec, transition{Closed, Open, "failure ratio 0.55 over 10s (11/20)"})
	})

	t.Run("below ratio", func(t *testing.T) {
		b, _, rec := newTestBreaker(t, ratioOnly(20))
		// 40% failures over 100 RPCs, never 50% at any prefix of >= 20.
		for i := range 100 {
			call(t, b, i%5 >= 2)
		}
		wantState(t, b, Closed)
		if n := len(rec.all()); n != 0 {
			t.Fatalf("%d transitions, want 0", n)
		}
	})

	t.Run("exactly the ratio trips", func(t *testing.T) {
		b, _, rec := newTestBreaker(t, ratioOnly(4))
		call(t, b, true)
		call(t, b, true)
		call(t, b, false)
		wantState(t, b, Closed)
		call(t, b, false)
		wantTransition(t, rec, transition{Closed, Open, "failure ratio 0.50 over 10s (2/4)"})
	})

	t.Run("min volume 1", func(t *testing.T) {
		b, _, rec := newTestBreaker(t, ratioOnly(1))
		call(t, b, true)
		call(t, b, false)
		wantTransition(t, rec, transition{Closed, Open, "failure ratio 0.50 over 10s (1/2)"})
	})
}

// TestBreaker_WindowSlides puts failures early in the window and checks
// that they count while inside it and expire once the window moved past.
func TestBreaker_WindowSlides(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 0
	cfg.MinRequests = 20

	t.Run("old failures expire", func(t *testing.T) {
		b, clk, _ := newTestBreaker(t, cfg)
		for range 10 {
			call(t, b, false)
		}
		clk.advance(time.Duration(cfg.Window))
		// Had they stayed, the first new failure would trip with 11/12.
		for i := range 19 {
			call(t, b, i%2 == 0) // 10 successes, 9 failures: below min volume
		}
		wantState(t, b, Closed)
	})

	t.Run("failures inside the window count", func(t *testing.T) {
		b, clk, rec := newTestBreaker(t, cfg)
		for range 10 {
			call(t, b, false)
		}
		clk.advance(time.Duration(cfg.Window) * 9 / 10) // the oldest bucket is still in
		for range 9 {
			call(t, b, true)
		}
		wantState(t, b, Closed)
		call(t, b, true) // 10/20
		// A success never trips; the next failure does, with 11/21.
		call(t, b, false)
		wantTransition(t, rec, transition{Closed, Open, "failure ratio 0.52 over 10s (11/21)"})
	})
}

func TestBreaker_DisabledTriggersNeverTrip(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 0
	cfg.FailureRatio = 0
	// Validate asks an enabled breaker for a trigger; Breaker itself
	// ignores Enabled.
	cfg.Enabled = false
	b, clk, rec := newTestBreaker(t, cfg)
	for range 1000 {
		call(t, b, false)
		clk.advance(time.Millisecond)
	}
	wantState(t, b, Closed)
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d transitions with both triggers disabled, want 0", n)
	}
}

// TestBreaker_StaleOutcomesIgnored: outcomes of calls admitted before a
// transition must not drive the state admitted after it.
func TestBreaker_StaleOutcomesIgnored(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	var slow []Ticket
	for range 6 {
		tk, _ := b.Allow()
		slow = append(slow, tk)
	}
	tripOpen(t, b)

	// Late outcomes of pre-trip calls while open: no effect.
	b.Record(slow[0], false)
	b.Record(slow[1], true)
	wantState(t, b, Open)

	clk.advance(5 * time.Second)
	trial, _ := b.Allow()
	// While half-open: a stale failure must not reopen, stale successes
	// must neither close nor count as the trial's success, which would let
	// a second trial in beside it.
	b.Record(slow[2], false)
	b.Record(slow[3], true)
	b.Record(slow[4], true)
	b.Record(slow[5], true)
	wantState(t, b, HalfOpen)
	if b.Admits() {
		t.Fatal("stale successes let a second trial in beside the first")
	}
	b.Record(trial, false)
	wantState(t, b, Open)

	// A trial of the previous half-open phase is stale too.
	clk.advance(10 * time.Second)
	for i := range 2 {
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("trial %d refused", i+1)
		}
		b.Record(tk, true)
	}
	t3, _ := b.Allow()
	b.Record(trial, true) // from the old half-open phase
	wantState(t, b, HalfOpen)
	if b.Admits() {
		t.Fatal("a stale success let a fourth trial in beside the third")
	}
	b.Record(t3, true)
	wantState(t, b, Closed)

	// And a closed-phase ticket from before the trip does not count toward
	// the consecutive failures of the new closed phase.
	for range 4 {
		call(t, b, false)
	}
	b.Record(slow[0], false)
	wantState(t, b, Closed)
	if n := len(rec.all()); n != 5 {
		t.Errorf("%d transitions, want 5: %+v", n, rec.all())
	}
	b.Record(Ticket{}, false) // the zero Ticket is ignored
	b.Release(Ticket{})
	wantState(t, b, Closed)
}

// TestBreaker_ReleaseReturnsTrialSlot: a released trial is no outcome; it
// lets the next trial in, and HalfOpenRequests recorded successes are still
// needed to close.
func TestBreaker_ReleaseReturnsTrialSlot(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)
	clk.advance(5 * time.Second)
	allow := func(what string) Ticket {
		t.Helper()
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("%s refused", what)
		}
		return tk
	}
	release := func(tk Ticket) {
		t.Helper()
		if b.Admits() {
			t.Fatal("Admits() = true with a trial in flight")
		}
		b.Release(tk)
		if !b.Admits() {
			t.Fatal("Admits() = false after the trial in flight was released")
		}
	}
	release(allow("first trial")) // the very first trial, which moved Open->HalfOpen
	b.Record(allow("first trial after a release"), true)
	release(allow("second trial"))
	release(allow("second trial after a release"))
	b.Record(allow("second trial after two releases"), true)
	wantState(t, b, HalfOpen) // three releases, two successes: not yet
	b.Record(allow("third trial"), true)
	wantState(t, b, Closed)
	wantTransition(t, rec, transition{HalfOpen, Closed, "3/3 trial RPCs succeeded"})

	// Release of a closed-phase ticket is harmless.
	tk, _ := b.Allow()
	b.Release(tk)
	call(t, b, true)
	wantState(t, b, Closed)
}

// TestBreaker_SecondTrialWaitsForFirst: while a trial is in flight no
// second one is admitted for as long as TrialTimeout (10s by default; what
// happens after it is TestBreaker_TrialTimeoutSupersedesStuckTrial); the first trial's success or release lets exactly one
// more in, and its failure reopens without one.
func TestBreaker_SecondTrialWaitsForFirst(t *testing.T) {
	for _, tc := range []struct {
		name      string
		finish    func(*Breaker, Ticket)
		wantState State
		wantNext  bool
	}{
		{"succeeds", func(b *Breaker, tk Ticket) { b.Record(tk, true) }, HalfOpen, true},
		{"released", func(b *Breaker, tk Ticket) { b.Release(tk) }, HalfOpen, true},
		{"fails", func(b *Breaker, tk Ticket) { b.Record(tk, false) }, Open, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, clk, _ := newTestBreaker(t, consecutiveOnly())
			tripOpen(t, b)
			clk.advance(5 * time.Second)
			first, ok := b.Allow()
			if !ok {
				t.Fatal("first trial refused")
			}
			for i := range 10 {
				if b.Admits() {
					t.Fatalf("Admits() = true with the first trial in flight, %v in", time.Duration(i)*time.Second)
				}
				if _, ok := b.Allow(); ok {
					t.Fatalf("second trial admitted with the first in flight, %v in", time.Duration(i)*time.Second)
				}
				if i < 9 {
					clk.advance(time.Second)
				}
			}
			wantState(t, b, HalfOpen)

			tc.finish(b, first)
			wantState(t, b, tc.wantState)
			if got := b.Admits(); got != tc.wantNext {
				t.Fatalf("Admits() = %v after the first trial finished, want %v", got, tc.wantNext)
			}
			second, ok := b.Allow()
			if ok != tc.wantNext {
				t.Fatalf("Allow() ok = %v after the first trial finished, want %v", ok, tc.wantNext)
			}
			if !ok {
				return
			}
			if _, ok := b.Allow(); ok {
				t.Fatal("third call admitted with the second trial in flight")
			}
			b.Record(second, true)
			wantState(t, b, HalfOpen)
		})
	}
}

// TestBreaker_ConcurrentTrialBudget closes a breaker through its
// HalfOpenRequests trials, each step racing 64 goroutines on Allow: exactly
// one wins every step, exactly one goroutine performs Open->HalfOpen, and
// the breaker closes after exactly HalfOpenRequests successes.
func TestBreaker_ConcurrentTrialBudget(t *testing.T) {
	for _, n := range []int{1, 3, 10, 63} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cfg := consecutiveOnly()
			cfg.HalfOpenRequests = n
			var toHalfOpen atomic.Int32
			clk := &fakeClock{}
			b := New(cfg, clk.now, func(_, to State, _ string) {
				if to == HalfOpen {
					toHalfOpen.Add(1)
				}
			})
			rounds := max(3, 60/n) // bounds the goroutines started per subtest
			for round := range rounds {
				tripOpen(t, b)
				clk.advance(time.Hour)
				for step := range n {
					var mu sync.Mutex
					var admitted []Ticket
					var wg sync.WaitGroup
					start := make(chan struct{})
					for range 64 {
						wg.Go(func() {
							<-start
							if tk, ok := b.Allow(); ok {
								mu.Lock()
								admitted = append(admitted, tk)
								mu.Unlock()
							}
						})
					}
					close(start)
					wg.Wait()
					if got := len(admitted); got != 1 {
						t.Fatalf("round %d, trial %d: %d trials admitted, want 1", round, step+1, got)
					}
					if got := toHalfOpen.Load(); got != int32(round+1) {
						t.Fatalf("round %d, trial %d: %d transitions to half-open, want %d", round, step+1, got, round+1)
					}
					wantState(t, b, HalfOpen)
					b.Record(admitted[0], true)
				}
				// The trials all succeeded, so the next round starts closed.
				wantState(t, b, Closed)
			}
		})
	}
}

// TestBreaker_ConcurrentOnChangeOncePerTransition hammers one breaker from
// many goroutines with random outcomes and a moving clock. Every phase
// carries its generation, so the number of transitions performed is known
// exactly: onChange must have been called that many times, each with a
// legal edge.
func TestBreaker_ConcurrentOnChangeOncePerTransition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 3
	cfg.MinRequests = 5
	cfg.OpenDuration = config.Duration(10 * time.Millisecond)
	cfg.MaxOpenDuration = config.Duration(80 * time.Millisecond)
	cfg.HalfOpenRequests = 2
	clk := &fakeClock{}
	rec := &recorder{}
	b := New(cfg, clk.now, rec.onChange)

	const goroutines, iters = 16, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range iters {
				clk.advance(time.Duration(r.IntN(200)) * 10 * time.Microsecond)
				if tk, ok := b.Allow(); ok {
					b.Record(tk, r.IntN(3) != 0)
				}
			}
		})
	}
	wg.Wait()

	got := rec.all()
	gen := b.cur.Load().gen
	if uint64(len(got)) != gen {
		t.Fatalf("onChange called %d times for %d transitions", len(got), gen)
	}
	if gen < 10 {
		t.Fatalf("only %d transitions: the test did not exercise the breaker", gen)
	}
	legal := map[[2]State]bool{{Closed, Open}: true, {Open, HalfOpen}: true, {HalfOpen, Closed}: true, {HalfOpen, Open}: true}
	for _, tr := range got {
		if !legal[[2]State{tr.from, tr.to}] || tr.reason == "" {
			t.Fatalf("illegal transition %+v", tr)
		}
	}
}

// TestBreaker_HammerInvariants runs Allow/Record/Release from many
// goroutines (run it with -race) and checks, while they run, that no
// half-open phase ever has more than one trial in flight or admits more
// than HalfOpenRequests trials that were not released, that no ticket names
// an open phase, and that onChange ran once per transition.
func TestBreaker_HammerInvariants(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 4
	cfg.MinRequests = 10
	cfg.OpenDuration = config.Duration(20 * time.Millisecond)
	cfg.MaxOpenDuration = config.Duration(200 * time.Millisecond)
	cfg.HalfOpenRequests = 3
	clk := &fakeClock{}
	var transitions, closes atomic.Int64
	b := New(cfg, clk.now, func(from, to State, _ string) {
		transitions.Add(1)
		if from == HalfOpen && to == Closed {
			closes.Add(1)
		}
	})

	type trialCount struct {
		admitted atomic.Int32 // admitted and not released
		inFlight atomic.Int32 // admitted, neither recorded nor released
	}
	var counts sync.Map // *phase -> *trialCount
	var violations atomic.Int32
	var firstViolation atomic.Value
	violate := func(format string, args ...any) {
		if violations.Add(1) == 1 {
			firstViolation.Store(fmt.Sprintf(format, args...))
		}
	}

	const goroutines, iters = 16, 3000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range iters {
				clk.advance(time.Duration(r.IntN(100)) * 10 * time.Microsecond)
				tk, ok := b.Allow()
				if !ok {
					continue
				}
				var tc *trialCount // of this ticket's half-open phase
				switch tk.p.state {
				case Open:
					violate("ticket of an open phase")
				case HalfOpen:
					v, _ := counts.LoadOrStore(tk.p, new(trialCount))
					tc = v.(*trialCount)
					if c := tc.inFlight.Add(1); c > 1 {
						violate("%d trials in flight at once in one half-open phase", c)
					}
					if c := tc.admitted.Add(1); c > int32(cfg.HalfOpenRequests) {
						violate("%d trials admitted and not released in one half-open phase", c)
					}
				}
				// The counts drop before Release or Record can let the next
				// trial in, so they never lag behind the breaker.
				if r.IntN(10) == 0 {
					if tc != nil {
						tc.inFlight.Add(-1)
						tc.admitted.Add(-1)
					}
					b.Release(tk)
					continue
				}
				if tc != nil {
					tc.inFlight.Add(-1)
				}
				// Mostly successes, so that half-open phases see several
				// trials in a row and some of them close.
				b.Record(tk, r.IntN(4) != 0)
			}
		})
	}
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d invariant violations, first: %v", v, firstViolation.Load())
	}
	if got, want := transitions.Load(), int64(b.cur.Load().gen); got != want {
		t.Fatalf("onChange called %d times for %d transitions", got, want)
	}
	if transitions.Load() < 10 {
		t.Fatalf("only %d transitions: the test did not exercise the breaker", transitions.Load())
	}
	if closes.Load() == 0 {
		t.Fatalf("no half-open phase closed in %d transitions: no trial followed a success", transitions.Load())
	}
}

// TestBreaker_RecordAtUsesCallersTime: RecordAt must take the time from
// its argument, never from the clock, for the window and the open period.
func TestBreaker_RecordAtUsesCallersTime(t *testing.T) {
	var reads atomic.Int32
	clk := &fakeClock{}
	counting := func() int64 { reads.Add(1); return clk.now() }
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 0
	rec := &recorder{}
	b := New(cfg, counting, rec.onChange)
	reads.Store(0)

	recordAt := func(success bool, now time.Duration) {
		t.Helper()
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("Allow() refused in state %v", b.State())
		}
		b.RecordAt(tk, success, int64(now))
	}
	for range 10 {
		recordAt(false, 0)
	}
	// The clock stays at 0; the caller says a whole window has passed, so
	// the 10 failures have expired and 10 more in 19 outcomes do not trip.
	for i := range 19 {
		recordAt(i%2 == 0, time.Duration(cfg.Window))
	}
	wantState(t, b, Closed)
	recordAt(false, time.Duration(cfg.Window)+time.Second) // 10/20
	wantTransition(t, rec, transition{Closed, Open, "failure ratio 0.50 over 10s (10/20)"})
	if n := reads.Load(); n != 0 {
		t.Fatalf("RecordAt read the clock %d times", n)
	}
	// The open period runs from the caller's time, 11s.
	clk.advance(16*time.Second - 1)
	if b.Admits() {
		t.Fatal("Admits() = true before the open period from the caller's time ended")
	}
	clk.advance(1)
	if !b.Admits() {
		t.Fatal("Admits() = false after the open period from the caller's time ended")
	}
}

// TestBreaker_ClosedPathSkipsClock: without the ratio trigger, successes of
// a closed breaker need no time and must not pay for a clock read.
func TestBreaker_ClosedPathSkipsClock(t *testing.T) {
	var reads atomic.Int32
	b := New(consecutiveOnly(), func() int64 { reads.Add(1); return 0 }, nil)
	reads.Store(0)
	for range 100 {
		call(t, b, true)
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("%d clock reads for 100 successes, want 0", n)
	}
}

func TestBreaker_ClosedPathDoesNotAllocate(t *testing.T) {
	b, _, _ := newTestBreaker(t, DefaultConfig())
	// One failure in three stays below both triggers.
	allocs := testing.AllocsPerRun(1000, func() {
		for _, ok := range []bool{true, false, true} {
			tk, _ := b.Allow()
			b.Record(tk, ok)
		}
		tk, _ := b.Allow()
		b.RecordAt(tk, true, 0)
		_ = b.Admits()
	})
	if allocs != 0 {
		t.Fatalf("Allow+Record on a closed breaker: %v allocs, want 0", allocs)
	}
	wantState(t, b, Closed)
}

func TestNew_DefaultClockAndNilOnChange(t *testing.T) {
	cfg := consecutiveOnly()
	cfg.OpenDuration = config.Duration(10 * time.Millisecond) // the minimum
	cfg.MaxOpenDuration = cfg.OpenDuration
	b := New(cfg, nil, nil)
	tripOpen(t, b)
	// The real clock moves past the open period; poll with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for !b.Admits() {
		if time.Now().After(deadline) {
			t.Fatal("open period of 10ms did not elapse on the real clock")
		}
	}
	call(t, b, true)
	wantState(t, b, HalfOpen)
}

func TestNew_PanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		r := recover()
		if err, ok := r.(error); !ok || !strings.Contains(err.Error(), "openDuration") {
			t.Fatalf("recover() = %v, want the Validate error", r)
		}
	}()
	cfg := DefaultConfig()
	cfg.OpenDuration = 0
	New(cfg, nil, nil)
}

func TestState_String(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int32(s), got, want)
		}
	}
}

func TestWindow_SaturatesAndSkipsNewerBuckets(t *testing.T) {
	var w window
	w.buckets[3].Store(packBucket(3, cntMax, cntMax))
	w.add(3, false)
	if f, total := w.sum(3); f != cntMax || total != cntMax {
		t.Fatalf("saturated bucket: sum = %d/%d, want %d/%d", f, total, cntMax, cntMax)
	}

	w = window{}
	// A late writer (slot 2) must not wipe the newer slot 12 in bucket 2.
	w.add(12, true)
	w.add(2, false)
	if f, total := w.sum(12); f != 1 || total != 2 {
		t.Fatalf("after a late write: sum = %d/%d, want 1/2", f, total)
	}
	w.add(3, true) // slot 3 is still inside the window ending at 12
	if f, total := w.sum(12); f != 2 || total != 3 {
		t.Fatalf("with slot 3: sum = %d/%d, want 2/3", f, total)
	}
	// Slot 13 rotates bucket 3: slot 3 drops out.
	w.add(13, false)
	if f, total := w.sum(13); f != 1 || total != 3 {
		t.Fatalf("after rotation: sum = %d/%d, want 1/3", f, total)
	}
}
