package fulcrumhttp

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// The engine's configuration, derived from the shared fields of Config.

func engineConfig(c *config) endpointset.Config { return c.policySet }

func engineOptions(c *config, now func() time.Time, onChange func(), prefix string) endpointset.Options {
	o := endpointset.Options{
		Probing:   c.probing(),
		Warmup:    c.probing() && c.HealthProbe.Warmup,
		OnChange:  onChange,
		Now:       now,
		LogPrefix: prefix,
		Logger:    logger,
	}
	if b := c.Breaker; b.Enabled {
		bc := b.Config
		o.Breaker = &bc
	}
	return o
}

func pickerConfig(c *config) picker.Config { return c.policyPicker }

// selection is one published decision of the engine: a picker over the
// usable endpoints. Immutable.
type selection struct {
	cfg     picker.Config
	p       *picker.Picker
	entries []picker.Entry
	eps     []*endpoint // parallel to entries
}

func newSelection(cfg picker.Config, d endpointset.Decision) *selection {
	s := &selection{cfg: cfg, p: d.Picker(cfg), entries: d.Entries, eps: make([]*endpoint, len(d.Records))}
	for i, r := range d.Records {
		s.eps[i] = r.Value.(*endpoint)
	}
	return s
}

// attempt is one selected endpoint for one attempt of a request. Exactly
// one of finish or abort must be called.
type attempt struct {
	ep  *endpoint
	p   *picker.Picker
	i   int
	tok picker.Token
}

// finish ends the attempt's flight and feeds its outcome to the breaker
// and the latency estimate.
func (a *attempt) finish(o picker.Outcome) {
	if o.Verdict == picker.Failure {
		a.ep.failures.Add(1)
	}
	a.p.Finish(a.i, a.tok, o)
	if a.ep.rt.gone.Load() {
		// The endpoint left while this attempt was in flight: its
		// connection is idle now, close it (retire could not).
		a.ep.rt.tr.CloseIdleConnections()
	}
}

// abort undoes the selection of an attempt that was never sent.
func (a *attempt) abort() { a.p.Abort(a.i, a.tok) }

// hot is the engine's state of the attempt's endpoint, its identity for
// the picker (a retry or a hedge skips the endpoints tried).
func (a *attempt) hot() *picker.Endpoint { return a.p.Entry(a.i).Endpoint }

// pick selects the endpoint of one attempt, none of tried (the endpoints
// earlier attempts of the request went to). An endpoint holding off after
// a Retry-After is passed over for another when there is one; when every
// candidate is held, the hold is ignored: a hold never leaves the host
// without an endpoint (the engine never hears of holds, so panic mode
// may use held endpoints too).
func (s *selection) pick(tried []*picker.Endpoint) (*attempt, error) {
	a, err := s.pickExcept(tried)
	if err != nil || a.ep.rt.held().IsZero() {
		return a, err
	}
	skip := slices.Clone(tried)
	for i, ep := range s.eps {
		if !ep.rt.held().IsZero() {
			skip = append(skip, s.entries[i].Endpoint)
		}
	}
	b, err := s.pickExcept(skip)
	if err != nil {
		return a, nil // all held
	}
	a.abort()
	return b, nil
}

// pickExcept selects among the endpoints not in skip (a retry or a hedge
// goes to an endpoint the request is not already on), over the same
// shared state (in-flight, latency, breakers): picker.SelectExcept.
func (s *selection) pickExcept(skip []*picker.Endpoint) (*attempt, error) {
	i, tok, err := s.p.SelectExcept(false, skip)
	switch {
	case errors.Is(err, picker.ErrNoOtherEndpoint):
		return nil, fmt.Errorf("no endpoint left to retry on after %d attempts: %w", len(skip), ErrNoUsableEndpoint)
	case err != nil:
		return nil, fmt.Errorf("%v: %w", err, ErrNoUsableEndpoint)
	}
	return &attempt{ep: s.eps[i], p: s.p, i: i, tok: tok}, nil
}
