package breaker

import (
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// TestBreaker_TrialTimeoutSupersedesStuckTrial: a half-open trial that never
// finishes (a unary RPC without deadline to a hung server, a long-lived
// stream) holds the next trial back for TrialTimeout only. After it, the
// next caller is admitted as the trial of a fresh half-open phase, and the
// stuck trial's eventual outcome is ignored whichever it is.
func TestBreaker_TrialTimeoutSupersedesStuckTrial(t *testing.T) {
	for _, tc := range []struct {
		name    string
		late    bool // the stuck trial's eventual outcome
		timeout time.Duration
	}{
		{"stuck trial fails late", false, 10 * time.Second},
		{"stuck trial succeeds late", true, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := consecutiveOnly()
			cfg.TrialTimeout = config.Duration(tc.timeout)
			cfg.HalfOpenRequests = 1
			b, clk, _ := newTestBreaker(t, cfg)
			tripOpen(t, b)
			clk.advance(time.Duration(cfg.OpenDuration))
			stuck, ok := b.Allow()
			if !ok {
				t.Fatal("first trial refused")
			}
			clk.advance(tc.timeout - time.Nanosecond)
			if b.Admits() {
				t.Fatalf("Admits() = true %v into a trial, before TrialTimeout %v", tc.timeout-time.Nanosecond, tc.timeout)
			}
			if _, ok := b.Allow(); ok {
				t.Fatal("second trial admitted before TrialTimeout")
			}
			clk.advance(time.Nanosecond)
			if !b.Admits() {
				t.Fatalf("Admits() = false at TrialTimeout %v with the trial still in flight", tc.timeout)
			}
			next, ok := b.Allow()
			if !ok {
				t.Fatal("no trial admitted at TrialTimeout")
			}
			if _, ok := b.Allow(); ok {
				t.Fatal("two trials admitted at once after the timeout")
			}
			b.Record(stuck, tc.late) // stale: must change nothing
			wantState(t, b, HalfOpen)
			b.Record(next, true)
			wantState(t, b, Closed)
		})
	}
}

// TestBreaker_Snapshot reports state, the end of the open period in clock
// units, the trip level and the transition count.
func TestBreaker_Snapshot(t *testing.T) {
	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	if s := b.Snapshot(); s.State != Closed || s.Transitions != 0 {
		t.Fatalf("new breaker: %+v", s)
	}
	tripOpen(t, b)
	s := b.Snapshot()
	if s.State != Open || s.Until != clk.now()+int64(5*time.Second) || s.Trips != 1 || s.Transitions != 1 {
		t.Fatalf("after a trip: %+v, want Open until now+5s, 1 trip, 1 transition", s)
	}
}

// TestBreaker_OnTrialEnd: a trial that succeeds without closing the
// breaker, or is released, tells the owner that the next trial may go; the
// last success (a transition) goes to onChange instead.
func TestBreaker_OnTrialEnd(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	ends := 0
	b.OnTrialEnd(func() { ends++ })
	tripOpen(t, b)
	clk.advance(time.Duration(b.cfg.OpenDuration))
	tk, _ := b.Allow()
	b.Release(tk)
	if ends != 1 {
		t.Fatalf("%d trial-end notices after a release, want 1", ends)
	}
	for i := range 3 {
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("trial %d refused", i)
		}
		b.Record(tk, true)
	}
	if ends != 3 {
		t.Errorf("%d trial-end notices, want 3 (release + 2 successes that did not close)", ends)
	}
	if last := rec.last(t); last.to != Closed {
		t.Errorf("last transition %+v, want to closed", last)
	}
}
