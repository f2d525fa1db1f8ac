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
	var flag Mirror
	b.MirrorClosed(&flag)
	want := func(step string) {
		t.Helper()
		if got, closed := flag.Closed(), b.State() == Closed; got != closed {
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
	var late Mirror
	late.p.Store(&phase{state: Closed})
	b.MirrorClosed(&late)
	if late.Closed() {
		t.Fatal("a flag attached to an open breaker says closed")
	}
	if flag.Closed() {
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
		var flag Mirror
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
		if got, closed := flag.Closed(), b.State() == Closed; got != closed {
			t.Fatalf("round %d: mirror %v in state %v after %d transitions", round, got, b.State(), b.cur.Load().gen)
		}
		if b.cur.Load().gen < 4 {
			t.Fatalf("round %d: only %d transitions: the test did not exercise the breaker", round, b.cur.Load().gen)
		}
	}
}

// TestMirror_AdmitsAndRecordsClosedPhase: a closed breaker admits from its
// mirror; successes recorded through the mirror count in the failure-ratio
// window like Record's (they dilute failures below the ratio), without a
// clock read when the clock is shared; the mirror declines what it cannot
// record alone: another phase's ticket, a time from an unshared clock, no
// time at all.
func TestMirror_AdmitsAndRecordsClosedPhase(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 0
	cfg.MinRequests = 20
	var reads atomic.Int32
	clk := &fakeClock{}
	b := New(cfg, func() int64 { reads.Add(1); return clk.now() }, nil)
	var m Mirror
	b.MirrorClosed(&m)

	tk, ok := m.Allow()
	if !ok {
		t.Fatal("a closed breaker's mirror refused")
	}
	if m.Succeeded(tk, int64(time.Second)) {
		t.Fatal("Succeeded recorded a time of a clock the breaker does not share")
	}
	b.ShareClock()
	if m.Succeeded(tk, int64(time.Second)) {
		t.Fatal("Succeeded recorded a ticket of the phase ShareClock replaced")
	}
	clk.advance(time.Second) // a time of 0 means "not read"
	reads.Store(0)
	// 11 successes through the mirror, then 10 failures: 10/21 < 0.5.
	for range 11 {
		tk, _ := m.Allow()
		if m.Succeeded(tk, 0) {
			t.Fatal("Succeeded recorded without a time while the ratio trigger needs one")
		}
		if !m.Succeeded(tk, clk.now()) {
			t.Fatal("Succeeded declined a success of the current closed phase")
		}
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("the mirror's successes read the clock %d times", n)
	}
	for range 10 {
		tk, _ := m.Allow()
		b.RecordAt(tk, false, clk.now())
	}
	wantState(t, b, Closed)
	tk, _ = m.Allow()
	b.RecordAt(tk, false, clk.now()) // 11/22
	wantState(t, b, Open)
	if m.Closed() {
		t.Fatal("the mirror says closed after the trip")
	}
	if _, ok := m.Allow(); ok {
		t.Fatal("an open breaker's mirror admitted")
	}
	if m.Succeeded(tk, clk.now()) {
		t.Fatal("Succeeded recorded a ticket of the phase before the trip")
	}
}

// TestMirror_SuccessResetsConsecutiveFailures: a success through the
// mirror resets the run of consecutive failures, as Record's does.
func TestMirror_SuccessResetsConsecutiveFailures(t *testing.T) {
	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	var m Mirror
	b.MirrorClosed(&m)
	b.ShareClock()
	n := consecutiveOnly().ConsecutiveFailures
	for range 3 {
		for range n - 1 {
			tk, _ := m.Allow()
			b.Record(tk, false)
		}
		tk, _ := m.Allow()
		if !m.Succeeded(tk, clk.now()) {
			t.Fatal("Succeeded declined a success of the current closed phase")
		}
	}
	wantState(t, b, Closed)
}
