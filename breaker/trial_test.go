package breaker

import (
	"testing"
	"time"
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
			cfg.TrialTimeout = tc.timeout
			cfg.HalfOpenRequests = 1
			b, clk, _ := newTestBreaker(t, cfg)
			tripOpen(t, b)
			clk.advance(cfg.OpenDuration)
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

// TestBreaker_ZeroTrialTimeoutNeverSupersedes: TrialTimeout 0 disables the
// bound (the trial in flight holds the next one back however long it runs).
func TestBreaker_ZeroTrialTimeoutNeverSupersedes(t *testing.T) {
	cfg := consecutiveOnly()
	cfg.TrialTimeout = 0
	b, clk, _ := newTestBreaker(t, cfg)
	tripOpen(t, b)
	clk.advance(cfg.OpenDuration)
	if _, ok := b.Allow(); !ok {
		t.Fatal("first trial refused")
	}
	clk.advance(24 * time.Hour)
	if b.Admits() {
		t.Fatal("Admits() = true with TrialTimeout 0 and a trial in flight")
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
