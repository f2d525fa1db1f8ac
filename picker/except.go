package picker

import "fmt"

// ErrNoOtherEndpoint is wrapped by the error SelectExcept returns when
// every candidate is excluded.
var ErrNoOtherEndpoint = fmt.Errorf("no usable endpoint the request is not already on")

// SelectExcept is SelectBounded among the candidates whose endpoint is not
// in skip (the endpoints a hedged call's other attempts are in flight on,
// or a retried request was tried on): a hedge never waits behind the
// attempt it is meant to rescue. The index it returns is p's, so Finish
// and Abort go to p as after Select. It builds a small picker over the
// remaining candidates (same shared state: in-flight, latency, breakers):
// hedges and retries are a few percent of requests, so this path may
// allocate; Select's does not.
//
// That picker compares up to MaxChoiceCount candidates, not ChoiceCount:
// an extra attempt is a rescue, and what the call waits for. With two
// choices, a hedge of a call stuck on a hung instance often went to one of
// two 3x slower peers (any pair of them, or one beside the other hung
// instance): in one hang-in-flight run the rescued calls that finished
// last took 37-60 ms, against 40 ms at most comparing all.
func (p *Picker) SelectExcept(bounded bool, skip []*Endpoint) (i int, t Token, err error) {
	if len(skip) == 0 {
		return p.SelectBounded(bounded)
	}
	entries := make([]Entry, 0, len(p.entries))
	index := make([]int, 0, len(p.entries))
	for j := range p.entries {
		if !containsEndpoint(skip, p.entries[j].Endpoint) {
			entries = append(entries, p.entries[j])
			index = append(index, j)
		}
	}
	if len(entries) == 0 {
		return -1, Token{}, fmt.Errorf("%w (%d excluded)", ErrNoOtherEndpoint, len(skip))
	}
	if len(entries) == len(p.entries) {
		return p.SelectBounded(bounded)
	}
	cfg := p.cfg
	cfg.ChoiceCount = MaxChoiceCount
	sub := New(cfg, entries)
	sub.ended = p.ended // request ends seen by p tell which rival stalled
	i, t, err = sub.SelectBounded(bounded)
	if err != nil {
		return -1, Token{}, err
	}
	return index[i], t, nil
}

func containsEndpoint(s []*Endpoint, e *Endpoint) bool {
	for _, x := range s {
		if x == e {
			return true
		}
	}
	return false
}
