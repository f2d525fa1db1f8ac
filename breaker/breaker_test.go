package breaker

import (
	"fmt"
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
