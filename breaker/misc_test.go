package breaker

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// TestBreaker_RecordAtUsesCallersTime: with a shared clock RecordAt must
// take the time from its argument, never from the clock, for the window
// and the open period.
func TestBreaker_RecordAtUsesCallersTime(t *testing.T) {
	var reads atomic.Int32
	clk := &fakeClock{}
	counting := func() int64 { reads.Add(1); return clk.now() }
	cfg := DefaultConfig()
	cfg.ConsecutiveFailures = 0
	rec := &recorder{}
	b := New(cfg, counting, rec.onChange)
	b.ShareClock()
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

// TestBreaker_RecordAtWithoutShareClockReadsItsClock: a caller whose clock
// is not the breaker's (a test's fake clock beside the real one) must not
// move the breaker's window: RecordAt then reads the breaker's clock.
func TestBreaker_RecordAtWithoutShareClockReadsItsClock(t *testing.T) {
	var reads atomic.Int32
	clk := &fakeClock{}
	b := New(DefaultConfig(), func() int64 { reads.Add(1); return clk.now() }, nil)
	reads.Store(0)
	tk, _ := b.Allow()
	b.RecordAt(tk, false, int64(time.Hour))
	if n := reads.Load(); n == 0 {
		t.Fatal("RecordAt used the caller's time without ShareClock")
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
