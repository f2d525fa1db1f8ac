package breaker

import (
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// The tests of this file were written against the mutants that survived
// `go run ./internal/cmd/mutate ./breaker` (docs/mutation.md): each pins a
// behaviour no earlier test checked.

// TestBreaker_LaterTrialsHoldFromTheirOwnStart: every trial, not only the
// first of a half-open phase, holds the next back for TrialTimeout from
// when it was admitted; the snapshot says whether one is in flight and
// since when. A trial that supersedes a stuck one starts a fresh count.
func TestBreaker_LaterTrialsHoldFromTheirOwnStart(t *testing.T) {
	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)
	clk.advance(time.Duration(b.cfg.OpenDuration))
	call(t, b, true) // trial 1 of 3
	if s := b.Snapshot(); s.State != HalfOpen || s.TrialInFlight {
		t.Fatalf("after trial 1 succeeded: %+v, want half-open, no trial in flight", s)
	}
	clk.advance(8 * time.Second)
	start := clk.now()
	if _, ok := b.Allow(); !ok { // trial 2, never finished
		t.Fatal("trial 2 refused")
	}
	if s := b.Snapshot(); !s.TrialInFlight || s.TrialAt != start {
		t.Fatalf("trial 2 in flight: %+v, want TrialInFlight since %d", s, start)
	}
	clk.advance(4 * time.Second) // 12s after trial 1, 4s after trial 2
	if _, ok := b.Allow(); ok || b.Admits() {
		t.Fatal("a caller was admitted 4s into trial 2 (TrialTimeout 10s)")
	}
	clk.advance(6 * time.Second)
	tk, ok := b.Allow()
	if !ok {
		t.Fatal("trial 2 still holds the next one back after TrialTimeout")
	}
	// The superseding trial starts a fresh count: when it succeeds, the
	// next trial goes at once, and three successes close the breaker.
	b.Record(tk, true)
	call(t, b, true)
	call(t, b, true)
	wantState(t, b, Closed)
}

// TestBreaker_ZeroTicketIgnored: the zero Ticket, which the picker holds
// for requests its breaker did not gate, is ignored by Record, RecordAt
// and Release.
func TestBreaker_ZeroTicketIgnored(t *testing.T) {
	cfg := consecutiveOnly()
	cfg.ConsecutiveFailures = 1
	b, clk, rec := newTestBreaker(t, cfg)
	b.Record(Ticket{}, false)
	b.RecordAt(Ticket{}, false, clk.now())
	b.Release(Ticket{})
	if s := b.Snapshot(); s.State != Closed || s.Transitions != 0 || len(rec.all()) != 0 {
		t.Fatalf("after zero-ticket outcomes: %+v, transitions %v; want closed, untouched", s, rec.all())
	}
}

// TestBreaker_SuccessResetsAnyRun: a success ends the run of failures
// whatever its length, so the trigger needs ConsecutiveFailures in a row.
func TestBreaker_SuccessResetsAnyRun(t *testing.T) {
	cfg := consecutiveOnly()
	cfg.ConsecutiveFailures = 4
	for run := 1; run < cfg.ConsecutiveFailures; run++ {
		b, _, _ := newTestBreaker(t, cfg)
		for range run {
			call(t, b, false)
		}
		call(t, b, true)
		for range cfg.ConsecutiveFailures - 1 {
			call(t, b, false)
		}
		if st := b.State(); st != Closed {
			t.Fatalf("%d failures, a success, %d failures: %v, want closed", run, cfg.ConsecutiveFailures-1, st)
		}
		call(t, b, false)
		wantState(t, b, Open)
	}
}

// TestBreaker_OneFailureTrips: consecutiveFailures 1 trips on the first
// failure, even with the ratio trigger on and below its volume.
func TestBreaker_OneFailureTrips(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 1
	b, _, _ := newTestBreaker(t, cfg)
	call(t, b, false)
	wantState(t, b, Open)
}

// TestBreaker_BackoffResetStartsAtTripOne: once the backoff starts over,
// the trip level reported is 1 again, with the first open duration.
func TestBreaker_BackoffResetStartsAtTripOne(t *testing.T) {
	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)
	clk.advance(time.Duration(b.cfg.OpenDuration))
	for range b.cfg.HalfOpenRequests {
		call(t, b, true)
	}
	wantState(t, b, Closed)
	clk.advance(time.Duration(b.cfg.MaxOpenDuration))
	tripOpen(t, b)
	if s := b.Snapshot(); s.Trips != 1 || s.Until != clk.now()+int64(time.Duration(b.cfg.OpenDuration)) {
		t.Fatalf("trip after staying closed MaxOpenDuration: %+v, want trip 1 for OpenDuration", s)
	}
}

// ratioOnly trips at 50 % failures over at least 20 outcomes in a 1s window
// (buckets of 100ms, the smallest).
func ratioOnly() Config {
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 0
	cfg.Window = config.Duration(time.Second)
	return cfg
}

// TestBreaker_RatioAfterLongUptime: the 24-bit slot number of a bucket
// wraps after 2^24 buckets (19 days of 100ms buckets); the ratio trigger
// must keep working across and after the wrap.
func TestBreaker_RatioAfterLongUptime(t *testing.T) {
	for _, days := range []int{5, 20, 40} {
		b, clk, _ := newTestBreaker(t, ratioOnly())
		clk.advance(time.Duration(days) * 24 * time.Hour)
		for range b.cfg.MinRequests - 1 {
			call(t, b, false)
		}
		wantState(t, b, Closed)
		call(t, b, false)
		if st := b.State(); st != Open {
			t.Fatalf("%d days after New: %v after %d failures, want open", days, st, b.cfg.MinRequests)
		}
	}
}

// TestBreaker_WeekOldBucketStartsOver: a bucket last written a week ago (6
// million slots of 100ms behind the current one: not a newer slot of a
// concurrent writer) is rotated: its old counts do not add to the new
// ones, and the new ones count.
func TestBreaker_WeekOldBucketStartsOver(t *testing.T) {
	b, clk, _ := newTestBreaker(t, ratioOnly())
	for range 15 {
		call(t, b, false)
	}
	clk.advance(7 * 24 * time.Hour) // 6,048,000 buckets: the same bucket index
	for range 5 {
		call(t, b, false)
	}
	if st := b.State(); st != Closed {
		t.Fatalf("5 failures now and 15 a week ago: %v, want closed (5 outcomes is below minRequests 20)", st)
	}
	for range 15 {
		call(t, b, false)
	}
	wantState(t, b, Open)
}

// TestWindow_CountsSaturateAt2To20: a bucket counts up to 2^20-1 outcomes
// (a million RPCs per bucket to one endpoint), as documented, and stays
// there.
func TestWindow_CountsSaturateAt2To20(t *testing.T) {
	var w window
	for range 1<<20 + 5 {
		w.add(7, true)
	}
	if f, total := w.sum(7); f != 1<<20-1 || total != 1<<20-1 {
		t.Fatalf("after 2^20+5 failures in one slot: %d/%d, want %d/%d", f, total, 1<<20-1, 1<<20-1)
	}
}
