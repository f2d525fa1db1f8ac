package picker

import (
	"testing"
	"time"
	"unsafe"
)

// TestEndpoint_HotStateOnOneLine: everything a pick and its Done write
// (in-flight, picks, age slots, latency estimate) sits on one cache line
// after a line of read-only fields, so a pick reads two lines per
// candidate and hot lines of neighbouring Endpoints never share a line.
func TestEndpoint_HotStateOnOneLine(t *testing.T) {
	var e Endpoint
	first, last := unsafe.Offsetof(e.inFlight), unsafe.Offsetof(e.latency)+unsafe.Sizeof(e.latency)
	if first != cacheLine || last != 2*cacheLine || unsafe.Sizeof(e) != 2*cacheLine {
		t.Fatalf("hot state at [%d, %d) of %d bytes, want [%d, %d) of %d", first, last, unsafe.Sizeof(e), cacheLine, 2*cacheLine, 2*cacheLine)
	}
}

// TestAgeSlots_Bound: the bound is that of the second oldest tracked
// request, counted by slot; the current slot bounds nothing; a request
// older than the ring is counted as if it had started later (the bound
// only drops); a slot emptied by Done stops counting.
func TestAgeSlots_Bound(t *testing.T) {
	w := int64(1) << ageSlotShift
	var s ageSlotsOf
	t0 := 100 * w // the start of an epoch
	s[ageSlot(t0)].Add(1)
	if got := s.bound(t0 + 3*w); got != 0 {
		t.Fatalf("one request in flight: bound %v, want 0 (one long call does not count)", time.Duration(got))
	}
	s[ageSlot(t0+w/2)].Add(1)
	if got := s.bound(t0 + w/2); got != 0 {
		t.Fatalf("two requests in the current slot: bound %v, want 0", time.Duration(got))
	}
	// At t0+3.5w both started in epoch t0, which ended at t0+w.
	if got, want := s.bound(t0+3*w+w/2), float64(2*w+w/2); got != want {
		t.Fatalf("bound %v, want %v", time.Duration(got), time.Duration(want))
	}
	// Eight epochs later the slot is the current one again: no bound.
	if got := s.bound(t0 + ageSlots*w + w/2); got != 0 {
		t.Fatalf("after a full ring: bound %v, want 0 (counted as new)", time.Duration(got))
	}
	s[ageSlot(t0)].Add(-1)
	s[ageSlot(t0+2*w)].Add(1)
	if got, want := s.bound(t0+4*w), float64(w); got != want {
		t.Fatalf("second oldest in epoch t0+2w at t0+4w: bound %v, want %v", time.Duration(got), time.Duration(want))
	}
}
