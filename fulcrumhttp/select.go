package fulcrumhttp

import (
	"fmt"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// chooser picks the endpoint of one attempt; done reports its outcome
// exactly once and ends its in-flight count.
type chooser interface {
	pick(exclude *endpoint) (ep *endpoint, done func(outcome), err error)
}

// selector is the seam between the HTTP adapter and the selection code
// shared with the gRPC policy: the picker package's weighted least-request
// selection, in-flight accounting and breaker gate.
type selector struct {
	cfg  *Config // read-only
	pcfg picker.Config
	now  func() time.Time
	// Guarded by the group's mutex.
	shared map[*endpoint]*picker.Endpoint
}

// unavailableMask is the picker's failure mask for the status the adapter
// reports failed attempts with.
const unavailableMask = 1 << uint32(codes.Unavailable)

func newSelector(cfg *Config, now func() time.Time) *selector {
	return &selector{
		cfg: cfg,
		pcfg: picker.Config{
			ChoiceCount:       cfg.LB.ChoiceCount,
			ActiveRequestBias: cfg.LB.ActiveRequestBias,
			LatencyAware:      cfg.LB.LatencyAware,
			LatencyDecay:      time.Duration(cfg.LB.LatencyDecay),
			FailureCodes:      unavailableMask,
		},
		now:    now,
		shared: map[*endpoint]*picker.Endpoint{},
	}
}

func (s *selector) breakerConfig() breaker.Config {
	b := s.cfg.LB.Breaker
	return breaker.Config{
		ConsecutiveFailures: b.ConsecutiveFailures,
		FailureRatio:        b.FailureRatio,
		MinRequests:         b.MinRequests,
		Window:              time.Duration(b.Window),
		OpenDuration:        time.Duration(b.OpenDuration),
		MaxOpenDuration:     time.Duration(b.MaxOpenDuration),
		HalfOpenRequests:    b.HalfOpenRequests,
	}
}

// update registers added endpoints and forgets removed ones. Caller must
// hold g.mu.
func (s *selector) update(g *group, added, removed []*endpoint) {
	for _, ep := range added {
		var gate *breaker.Breaker
		if s.cfg.LB.Breaker.Enabled {
			ep := ep
			gate = breaker.New(s.breakerConfig(), nil, func(from, to breaker.State, reason string) {
				logger.Infof("host %q: endpoint %s: breaker %v -> %v: %s", g.route.key, ep.addr(), from, to, reason)
			})
		}
		s.shared[ep] = picker.NewEndpoint(ep.addr(), gate)
	}
	for _, ep := range removed {
		delete(s.shared, ep)
	}
}

// setHealth is called when an endpoint's probe verdict or hold changed.
// Caller must hold g.mu.
func (s *selector) setHealth(*group, *endpoint) {}

func (s *selector) close() {}

// decide builds the snapshot of the group's current state. Caller must
// hold g.mu.
func (s *selector) decide(g *group) *snapshot {
	now := s.now()
	probing := s.cfg.probing()
	var entries []picker.Entry
	var eps []*endpoint
	unproven, unhealthy, held := 0, 0, 0
	for _, ep := range g.eps {
		switch {
		case probing && !ep.probe.known:
			unproven++
			continue
		case probing && !ep.probe.healthy:
			unhealthy++
			continue
		case ep.heldLocked(now):
			held++
			continue
		}
		sh := s.shared[ep]
		entries = append(entries, picker.Entry{Picker: epPicker{&epConn{ep: ep}}, Endpoint: sh, Weight: float64(ep.weight), Gated: sh.Breaker() != nil})
		eps = append(eps, ep)
	}
	switch {
	case len(entries) > 0:
		return &snapshot{picker: &pickerChooser{cfg: s.pcfg, p: picker.New(s.pcfg, entries), entries: entries, eps: eps}}
	case unproven > 0:
		return &snapshot{wait: true}
	}
	return &snapshot{err: g.errorf("all %d endpoints out of rotation: %d unhealthy, %d holding off after Retry-After", len(g.eps), unhealthy, held)}
}

// pickerChooser adapts a picker.Picker to HTTP attempts.
type pickerChooser struct {
	cfg     picker.Config
	p       *picker.Picker
	entries []picker.Entry
	eps     []*endpoint // parallel to entries
}

func (c *pickerChooser) pick(exclude *endpoint) (*endpoint, func(outcome), error) {
	p := c.p
	if exclude != nil {
		// A retry goes to another endpoint: select among the others with
		// the same shared state.
		var entries []picker.Entry
		for i, ep := range c.eps {
			if ep != exclude {
				entries = append(entries, c.entries[i])
			}
		}
		if len(entries) == 0 {
			return nil, nil, fmt.Errorf("no other endpoint: %w", ErrNoUsableEndpoint)
		}
		p = picker.New(c.cfg, entries)
	}
	res, err := p.Pick(grpcbalancer.PickInfo{})
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %w", err, ErrNoUsableEndpoint)
	}
	addr := res.SubConn.(*epConn).ep
	return addr, func(o outcome) {
		switch o {
		case success:
			res.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
		case failure:
			res.Done(grpcbalancer.DoneInfo{Err: errAttemptFailed, BytesSent: true})
		default:
			res.Done(grpcbalancer.DoneInfo{})
		}
	}, nil
}

var errAttemptFailed = status.Error(codes.Unavailable, "attempt failed")

// epPicker is the "child picker" of an entry: it names the endpoint.
type epPicker struct{ c *epConn }

func (p epPicker) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	return grpcbalancer.PickResult{SubConn: p.c}, nil
}

type epConn struct {
	grpcbalancer.SubConn
	ep *endpoint
}

// endpointStats returns ep's in-flight count and breaker state. Caller must
// hold g.mu.
func (s *selector) endpointStats(ep *endpoint) (inFlight int64, breakerState string) {
	sh := s.shared[ep]
	if sh == nil {
		return 0, ""
	}
	if b := sh.Breaker(); b != nil {
		breakerState = b.State().String()
	}
	return sh.InFlight(), breakerState
}
