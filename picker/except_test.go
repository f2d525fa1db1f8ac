package picker

import (
	"errors"
	"testing"
)

// TestPicker_SelectExceptSkipsEndpoints: SelectExcept never returns a
// skipped endpoint, returns indices of the original picker (Finish on it
// balances the in-flight count), and fails with ErrNoOtherEndpoint when
// everything is skipped.
func TestPicker_SelectExceptSkipsEndpoints(t *testing.T) {
	eps := []*Endpoint{NewEndpoint("a", nil), NewEndpoint("b", nil), NewEndpoint("c", nil)}
	entries := make([]Entry, len(eps))
	for i, e := range eps {
		entries[i] = Entry{Endpoint: e, Weight: 1}
	}
	cfg := DefaultConfig()
	cfg.ActiveRequestBias = 0 // weighted random: every endpoint is drawn
	p := New(cfg, entries)
	for range 200 {
		i, tok, err := p.SelectExcept(true, []*Endpoint{eps[0], eps[2]})
		if err != nil {
			t.Fatal(err)
		}
		if p.Entry(i).Endpoint != eps[1] {
			t.Fatalf("SelectExcept(skip a, c) chose %s", p.Entry(i).Endpoint.Addr())
		}
		p.Finish(i, tok, Outcome{})
	}
	for _, e := range eps {
		if n := e.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after Finish of every selection", e.Addr(), n)
		}
	}
	if _, _, err := p.SelectExcept(false, eps); !errors.Is(err, ErrNoOtherEndpoint) {
		t.Errorf("SelectExcept(skip all) = %v, want ErrNoOtherEndpoint", err)
	}
}

// TestPicker_SelectExceptComparesAll: an extra attempt (a hedge, a retry)
// is a rescue: it compares every remaining candidate (up to
// MaxChoiceCount), not two, and goes to the least loaded. With a, b, c
// holding 0, 1 and 2 requests, two choices would give b whenever the pair
// drawn is {b, c}, a third of the time.
func TestPicker_SelectExceptComparesAll(t *testing.T) {
	eps := []*Endpoint{NewEndpoint("skipped", nil), NewEndpoint("a", nil), NewEndpoint("b", nil), NewEndpoint("c", nil)}
	entries := make([]Entry, len(eps))
	for i, e := range eps {
		entries[i] = Entry{Endpoint: e, Weight: 1}
	}
	p := New(DefaultConfig(), entries)
	eps[2].inFlight.Store(1)
	eps[3].inFlight.Store(2)
	for range 200 {
		i, tok, err := p.SelectExcept(true, eps[:1])
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Entry(i).Endpoint; got != eps[1] {
			t.Fatalf("SelectExcept chose %s (%d in flight), want a, the only idle candidate", got.Addr(), got.InFlight()-1)
		}
		p.Abort(i, tok)
	}
}
