package breaker

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// TestBreaker_MirrorFollowsTransitions: the mirrored flag is true exactly
// while the breaker is closed, through Closed -> Open -> HalfOpen ->
// Closed; a flag attached to a breaker that is already open starts false;
// a second flag detaches the first one, which stays false.
func TestBreaker_MirrorFollowsTransitions(t *testing.T) {
	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	var flag atomic.Bool
	b.MirrorClosed(&flag)
	want := func(step string) {
		t.Helper()
		if got, closed := flag.Load(), b.State() == Closed; got != closed {
			t.Fatalf("%s: mirror %v in state %v", step, got, b.State())
		}
	}
	want("new")
	tripOpen(t, b)
	want("tripped")
	clk.advance(time.Duration(DefaultConfig().OpenDuration))
	tk, ok := b.Allow()
	if !ok {
		t.Fatal("no trial after the open period")
	}
	want("half-open")
	b.Record(tk, true)
	for range DefaultConfig().HalfOpenRequests - 1 {
		call(t, b, true)
	}
	wantState(t, b, Closed)
	want("closed again")

	tripOpen(t, b)
	var late atomic.Bool
	late.Store(true)
	b.MirrorClosed(&late)
	if late.Load() {
		t.Fatal("a flag attached to an open breaker says closed")
	}
	if flag.Load() {
		t.Fatal("the detached flag says closed")
	}
}

// TestBreaker_MirrorUnderConcurrentTransitions: goroutines race through
// trips, trials and closes; once they stop, the flag agrees with the
// state (a transition whose store lost the race to a later one must not
// leave its stale value behind). Run with -race.
func TestBreaker_MirrorUnderConcurrentTransitions(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 2
	cfg.OpenDuration = config.Duration(10 * time.Millisecond)
	cfg.MaxOpenDuration = config.Duration(20 * time.Millisecond)
	cfg.HalfOpenRequests = 1
	for round := range 20 {
		clk := &fakeClock{}
		b := New(cfg, clk.now, nil)
		var flag atomic.Bool
		b.MirrorClosed(&flag)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for range 500 {
					clk.advance(time.Duration(r.IntN(100)) * 10 * time.Microsecond)
					if tk, ok := b.Allow(); ok {
						b.Record(tk, r.IntN(3) != 0)
					}
				}
			})
		}
		wg.Wait()
		if got, closed := flag.Load(), b.State() == Closed; got != closed {
			t.Fatalf("round %d: mirror %v in state %v after %d transitions", round, got, b.State(), b.cur.Load().gen)
		}
		if b.cur.Load().gen < 4 {
			t.Fatalf("round %d: only %d transitions: the test did not exercise the breaker", round, b.cur.Load().gen)
		}
	}
}
