package breaker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

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
	// HalfOpen -> HalfOpen: a trial still in flight after TrialTimeout
	// (10s) is superseded; a goroutine descheduled between Allow and Record
	// while the others move the clock 10s can make that happen here.
	legal := map[[2]State]bool{{Closed, Open}: true, {Open, HalfOpen}: true, {HalfOpen, Closed}: true, {HalfOpen, Open}: true, {HalfOpen, HalfOpen}: true}
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
