package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/driver"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/picker"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// ErrNoUsableEndpoint is wrapped by the error of a request that fails
// because its host has no usable endpoint (none resolved, or all unhealthy,
// ejected or holding off while panic mode does not apply). The engine's
// own reasons wrap endpointset.ErrNoUsableEndpoint, which errors.Is also
// matches.
var ErrNoUsableEndpoint = endpointset.ErrNoUsableEndpoint

// ErrClosed is wrapped by the error of requests sent after Close.
var ErrClosed = errors.New("transport closed")

// group is one host of the map: its resolution, the engine's record of its
// endpoints, their connection pools and probers, and the published
// selection.
//
// Lock order: g.mu, then the engine's own lock (inside Set methods). g.mu
// is never held while waiting for a prober, the resolver or the run
// goroutine to stop (all of them call into g), nor while sending a request.
type group struct {
	// Read-only after construction.
	t     *Transport
	route route
	pcfg  picker.Config
	set   *endpointset.Set
	obs   *driver.Observer
	drv   *driver.Driver    // set once by start
	res   resolver.Resolver // set once by start

	budget    *hedge.Budget            // this host's retries (retry.go); set by NewTransport
	hedger    *hedge.Hedger            // this host's hedging (hedging.go); nil when off; set by NewTransport
	snap      atomic.Pointer[snapshot] // what requests pick from
	decisions atomic.Uint64            // engine decisions published, for tests

	mu       sync.Mutex
	eps      map[string]*endpoint // by record key
	resolved bool                 // a first endpoint set or error arrived
	resErr   error                // the resolver's error while it has no set
	closed   bool
	probeIv  time.Duration // probe interval last applied to every prober (membership.go)
}

// endpoint is the adapter's data of one endpoint (the engine record's
// Value): its connection pool, its prober and its counters.
type endpoint struct {
	// Read-only after construction.
	rec   *endpointset.Record
	addrs []string
	rt    *pool // its connection pool and Retry-After hold (endpoint.go)

	requests atomic.Uint64 // attempts sent to it
	failures atomic.Uint64 // attempts that counted as failures

	// Guarded by g.mu.
	weight  uint32
	prober  *probe.Loop // nil when not probing
	removed bool
	probe   probeState
}

type probeState struct {
	known, healthy bool
	reason         string
}

// addr names the endpoint in logs and errors.
func (ep *endpoint) addr() string { return ep.addrs[0] }

// snapshot is an immutable view of a host's selection: either a way to
// pick, or why not.
type snapshot struct {
	sel  *selection // nil when err or wait
	err  error      // nothing usable: fail with it
	wait bool       // nothing resolved or proven yet: wait for the next snapshot
	// changed is closed when a newer snapshot replaces this one.
	changed chan struct{}
}

func newGroup(t *Transport, r route) *group {
	g := &group{t: t, route: r, pcfg: pickerConfig(t.cfg), eps: map[string]*endpoint{}}
	opts := engineOptions(t.cfg, clock.NowFunc(t.clk), g.requestDecide, fmt.Sprintf("[fulcrumhttp %q] ", r.key))
	opts.OnBreakerChange = g.breakerChanged
	g.set = endpointset.New(engineConfig(t.cfg), opts)
	g.obs = newObserver(g, t.rec)
	g.snap.Store(&snapshot{wait: true, changed: make(chan struct{})})
	return g
}

// start begins driving the engine and resolution; a malformed target
// fails here.
func (g *group) start() error {
	g.drv = driver.New(g.set, g, driver.Options{Clock: g.t.clk, Observer: g.obs})
	res, err := watch(g.route.target, g.onUpdate, g.onError)
	if err != nil {
		g.drv.Close()
		return fmt.Errorf("fulcrumhttp: host %q: %w", g.route.key, err)
	}
	g.res = res
	return nil
}

// requestDecide asks the driver for a new decision (the engine calls it on
// a breaker transition, from a request's goroutine). It never blocks.
func (g *group) requestDecide() { g.drv.Request() }

// publishLocked replaces the snapshot and wakes requests waiting on the old
// one. Caller must hold g.mu.
func (g *group) publishLocked(s *snapshot) {
	s.changed = make(chan struct{})
	close(g.snap.Swap(s).changed)
}

// Publish is the driver's call (driver.Publisher): it decides and
// publishes the host's snapshot. A Retry-After is not the engine's
// business (it only steers selection, pool.go), so there is no time of
// the adapter's own to wake for.
func (g *group) Publish(decide func() endpointset.Decision) (next time.Time, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return time.Time{}, false
	}
	// Decided in every case: the decision (all counts zero without
	// endpoints) is what metrics and the snapshot report.
	d := decide()
	g.decisions.Add(1)
	switch {
	case !g.resolved:
		g.publishLocked(&snapshot{wait: true})
	case len(g.eps) == 0 && g.resErr != nil:
		g.publishLocked(&snapshot{err: g.errorf(fmt.Errorf("resolution failed: %v: %w", g.resErr, ErrNoUsableEndpoint))})
	case len(g.eps) == 0:
		g.publishLocked(&snapshot{err: g.errorf(fmt.Errorf("the target resolved to no endpoints: %w", ErrNoUsableEndpoint))})
	case d.Err != nil:
		g.publishLocked(&snapshot{err: g.errorf(d.Err)})
	case d.Wait:
		g.publishLocked(&snapshot{wait: true})
	default:
		g.publishLocked(&snapshot{sel: newSelection(g.pcfg, d)})
	}
	return next, true
}

// errorf returns err prefixed with the host and its target.
func (g *group) errorf(err error) error {
	return fmt.Errorf("fulcrumhttp: host %q (target %q): %w", g.route.key, g.route.target, err)
}

// onProbe records a change of an endpoint's probe verdict.
func (g *group) onProbe(ep *endpoint, healthy bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ep.removed || g.closed {
		return
	}
	ep.probe = probeState{known: true, healthy: healthy, reason: reason}
	g.set.SetHealth(ep.rec, healthy, reason)
	g.drv.Request()
}

// pick selects an endpoint for one attempt, none of tried (a retry). A
// first attempt waits within ctx while the host has nothing resolved or
// proven yet.
func (g *group) pick(ctx context.Context, tried []*picker.Endpoint) (*attempt, error) {
	for {
		s := g.snap.Load()
		switch {
		case s.err != nil:
			g.noUsable(s.err, tried)
			return nil, s.err
		case s.wait && len(tried) > 0:
			// A retry does not wait: the failed attempt stands.
			return nil, g.errorf(fmt.Errorf("no other endpoint ready for a retry: %w", ErrNoUsableEndpoint))
		case s.wait:
			select {
			case <-s.changed:
				continue
			case <-ctx.Done():
				return nil, g.errorf(fmt.Errorf("waiting for a usable endpoint: %w", context.Cause(ctx)))
			}
		}
		a, err := s.sel.pick(tried)
		if err != nil {
			g.noUsable(err, tried)
			return nil, g.errorf(err)
		}
		return a, nil
	}
}

// shutdown stops resolution, probers and the run goroutine, and closes
// idle connections.
func (g *group) shutdown() {
	if g.res != nil {
		g.res.Close() // waits for the resolver's goroutine, which may call onUpdate
	}
	g.drv.Close()
	g.mu.Lock()
	g.closed = true
	var eps []*endpoint
	for _, ep := range g.eps {
		ep.removed = true
		eps = append(eps, ep)
	}
	s := &snapshot{err: fmt.Errorf("fulcrumhttp: host %q: %w", g.route.key, ErrClosed), changed: make(chan struct{})}
	close(g.snap.Swap(s).changed)
	g.mu.Unlock()
	for _, ep := range eps {
		ep.close()
	}
	g.obs.Close()
}
