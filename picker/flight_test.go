package picker

import "testing"

// TestFlightCount_PicksAndInFlightApart: one word holds both counts; a
// pick moves both, leaving flight moves only in-flight, and Store and Add
// (tests, other selectors) leave the picks alone.
func TestFlightCount_PicksAndInFlightApart(t *testing.T) {
	var f flightCount
	for range 5 {
		f.picked()
	}
	f.left()
	f.left()
	if got, want := f.Load(), int64(3); got != want {
		t.Fatalf("in flight %d after 5 picks and 2 ends, want %d", got, want)
	}
	f.Store(100)
	if got := f.Add(-1); got != 99 {
		t.Fatalf("Add(-1) after Store(100) = %d, want 99", got)
	}
	if got, want := f.picks(), uint64(5); got != want {
		t.Fatalf("picks %d, want %d (Store and Add must not count picks)", got, want)
	}
	f.Store(0)
	if f.Load() != 0 || f.picks() != 5 {
		t.Fatalf("after Store(0): in flight %d, picks %d, want 0, 5", f.Load(), f.picks())
	}
}
