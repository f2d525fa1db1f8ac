package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/resolver"
)

// ErrNoUsableEndpoint is wrapped by the error of a request that fails
// because its host has no usable endpoint (none resolved, or all unhealthy
// or ejected while panic mode does not apply).
var ErrNoUsableEndpoint = errors.New("no usable endpoint")

// group is one host of the map: its resolution, its endpoints with their
// connection pools and probers, and the selection over them.
//
// Lock order: g.mu is never held while waiting for a prober or the
// resolver to stop (both call into g), nor while sending a request.
type group struct {
	// Read-only after construction.
	t     *Transport
	route route
	res   resolver.Resolver // set once by start

	snap atomic.Pointer[snapshot] // what requests pick from

	mu       sync.Mutex
	eps      map[string]*endpoint // by spec key
	sel      *selector            // the selection engine of this host
	resolved bool                 // a first endpoint set or error arrived
	resErr   error                // the resolver's error while it has no set
	closed   bool
}

// endpoint is one instance of a host: its connection pool, its prober and
// its selection state.
type endpoint struct {
	// Read-only after construction.
	key   string
	addrs []string
	rt    *http.Transport
	g     *group

	requests atomic.Uint64 // attempts sent to it
	failures atomic.Uint64 // attempts that counted as failures

	// Guarded by g.mu.
	weight    uint32
	stopProbe func() // nil when not probing
	removed   bool
	probe     probeState
	holdUntil time.Time   // Retry-After: out of rotation until then
	holdTimer *time.Timer // ends the hold
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
	picker chooser // nil when err or wait
	err    error   // nothing usable: fail with it
	wait   bool    // nothing resolved or proven yet: wait for the next snapshot
	// changed is closed when a newer snapshot replaces this one.
	changed chan struct{}
}

func newGroup(t *Transport, r route) *group {
	g := &group{t: t, route: r, eps: map[string]*endpoint{}, sel: newSelector(t.cfg, t.now)}
	g.snap.Store(&snapshot{wait: true, changed: make(chan struct{})})
	return g
}

// start begins resolution; a malformed target fails here.
func (g *group) start() error {
	res, err := watch(g.route.target, g.onUpdate, g.onError)
	if err != nil {
		return fmt.Errorf("fulcrumhttp: host %q: %w", g.route.key, err)
	}
	g.res = res
	return nil
}

// publishLocked replaces the snapshot and wakes requests waiting on the old
// one. Caller must hold g.mu.
func (g *group) publishLocked(s *snapshot) {
	s.changed = make(chan struct{})
	old := g.snap.Swap(s)
	close(old.changed)
}

// rebuildLocked asks the engine for a new decision and publishes it.
// Caller must hold g.mu.
func (g *group) rebuildLocked() {
	if g.closed {
		return
	}
	switch {
	case !g.resolved:
		g.publishLocked(&snapshot{wait: true})
	case len(g.eps) == 0 && g.resErr != nil:
		g.publishLocked(&snapshot{err: g.errorf("resolution failed: %v", g.resErr)})
	case len(g.eps) == 0:
		g.publishLocked(&snapshot{err: g.errorf("the target resolved to no endpoints")})
	default:
		g.publishLocked(g.sel.decide(g))
	}
}

// errorf returns an error naming the host, its target and the reason,
// wrapping ErrNoUsableEndpoint.
func (g *group) errorf(format string, args ...any) error {
	return fmt.Errorf("fulcrumhttp: host %q (target %q): %s: %w", g.route.key, g.route.target, fmt.Sprintf(format, args...), ErrNoUsableEndpoint)
}

// onUpdate applies a new endpoint set from the resolver.
func (g *group) onUpdate(specs []spec) {
	var stop []*endpoint
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.resolved, g.resErr = true, nil
	seen := make(map[string]bool, len(specs))
	var added []*endpoint
	for _, sp := range specs {
		seen[sp.key] = true
		if ep, ok := g.eps[sp.key]; ok {
			ep.weight = sp.weight
			continue
		}
		ep := &endpoint{key: sp.key, addrs: sp.addrs, weight: sp.weight, g: g,
			rt: newEndpointTransport(g.t.template, g.t.cfg, g.t.tlsConfig, sp.addrs)}
		g.eps[sp.key] = ep
		added = append(added, ep)
	}
	for k, ep := range g.eps {
		if !seen[k] {
			delete(g.eps, k)
			ep.removed = true
			if ep.holdTimer != nil {
				ep.holdTimer.Stop()
			}
			stop = append(stop, ep)
		}
	}
	g.sel.update(g, added, stop)
	for _, ep := range added {
		if g.t.cfg.probing() {
			ep.stopProbe = startProber(ep.rt, g.t.probeSpec(g.route), ep.addr(), func(healthy bool, reason string) {
				g.onProbe(ep, healthy, reason)
			})
		}
	}
	g.rebuildLocked()
	g.mu.Unlock()
	// Stopping a prober waits for its goroutine, which may be waiting for
	// g.mu in onProbe: never with the lock held.
	for _, ep := range stop {
		ep.close()
	}
}

// close stops the endpoint's prober and closes its idle connections;
// requests still in flight on it finish normally.
func (ep *endpoint) close() {
	if ep.stopProbe != nil {
		ep.stopProbe()
	}
	ep.rt.CloseIdleConnections()
}

// onError records a resolver error. With a set already in use the resolver
// keeps serving it (last known good) and does not call this.
func (g *group) onError(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resolved, g.resErr = true, err
	if len(g.eps) == 0 {
		g.rebuildLocked()
	}
}

// onProbe records a change of an endpoint's probe verdict.
func (g *group) onProbe(ep *endpoint, healthy bool, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ep.removed || g.closed {
		return
	}
	if ep.probe.known && ep.probe.healthy != healthy {
		logger.Infof("host %q: endpoint %s: %s", g.route.key, ep.addr(), verdictText(healthy, reason))
	}
	ep.probe = probeState{known: true, healthy: healthy, reason: reason}
	g.sel.setHealth(g, ep)
	g.rebuildLocked()
}

func verdictText(healthy bool, reason string) string {
	if healthy {
		return "healthy: " + reason
	}
	return "unhealthy: " + reason
}

// hold takes ep out of rotation for d, following a Retry-After on a 503 or
// 429: the server said when to come back.
func (g *group) hold(ep *endpoint, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ep.removed || g.closed {
		return
	}
	until := g.t.now().Add(d)
	if !until.After(ep.holdUntil) {
		return
	}
	logger.Infof("host %q: endpoint %s: Retry-After %v, out of rotation until then", g.route.key, ep.addr(), d)
	ep.holdUntil = until
	if ep.holdTimer != nil {
		ep.holdTimer.Stop()
	}
	ep.holdTimer = time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !ep.removed && !g.closed {
			g.sel.setHealth(g, ep)
			g.rebuildLocked()
		}
	})
	g.sel.setHealth(g, ep)
	g.rebuildLocked()
}

// held reports whether a Retry-After hold is in force. Caller must hold
// g.mu.
func (ep *endpoint) heldLocked(now time.Time) bool { return now.Before(ep.holdUntil) }

// pick selects an endpoint for one attempt, other than exclude when that is
// not nil, waiting within ctx while the host has nothing resolved or
// proven yet.
func (g *group) pick(ctx context.Context, exclude *endpoint) (*endpoint, func(outcome), error) {
	for {
		s := g.snap.Load()
		switch {
		case s.err != nil:
			return nil, nil, s.err
		case s.wait:
			select {
			case <-s.changed:
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("fulcrumhttp: host %q (target %q): waiting for a usable endpoint: %w", g.route.key, g.route.target, context.Cause(ctx))
			}
		}
		return s.picker.pick(exclude)
	}
}

// shutdown stops resolution, probers and timers and closes idle
// connections.
func (g *group) shutdown() {
	if g.res != nil {
		g.res.Close() // waits for the resolver's goroutine, which may call onUpdate
	}
	g.mu.Lock()
	g.closed = true
	var eps []*endpoint
	for _, ep := range g.eps {
		ep.removed = true
		if ep.holdTimer != nil {
			ep.holdTimer.Stop()
		}
		eps = append(eps, ep)
	}
	g.sel.close()
	s := &snapshot{err: fmt.Errorf("fulcrumhttp: host %q: %w", g.route.key, ErrClosed), changed: make(chan struct{})}
	close(g.snap.Swap(s).changed)
	g.mu.Unlock()
	for _, ep := range eps {
		ep.close()
	}
}

// ErrClosed is wrapped by the error of requests sent after Close.
var ErrClosed = errors.New("transport closed")
