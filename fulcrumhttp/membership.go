package fulcrumhttp

import (
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// onUpdate applies a new endpoint set from the resolver.
func (g *group) onUpdate(specs []spec) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.resolved, g.resErr = true, nil
	es := make([]endpointset.Spec, len(specs))
	for i, sp := range specs {
		es[i] = endpointset.Spec{Key: sp.key, Addrs: sp.addrs, Weight: sp.weight, Metadata: sp.metadata}
	}
	added, removed := g.set.Update(es)
	for _, rec := range added {
		sp := specs[indexOf(specs, rec.Key)]
		ep := &endpoint{rec: rec, addrs: sp.addrs, rt: g.t.newPool(sp.addrs)}
		rec.Value = ep
		g.eps[rec.Key] = ep
		// HTTP has no connection to watch: an endpoint is ready to take
		// requests at once (connections are dialled per request), and a
		// dead one is found by its failures and probes.
		g.set.SetConn(rec, endpointset.ConnReady)
		if g.t.cfg.probing() {
			ep.stopProbe = startProber(ep.rt, g.t.probeSpec(g.route), ep.addr(), func(p healthprobe.Probe) {
				g.observeProbe(ep, p)
			}, func(healthy bool, reason string) {
				g.onProbe(ep, healthy, reason)
			})
		}
	}
	for _, sp := range specs {
		if ep := g.eps[sp.key]; ep != nil {
			ep.weight = sp.weight
		}
	}
	var stop []*endpoint
	for _, rec := range removed {
		ep := rec.Value.(*endpoint)
		ep.removed = true
		delete(g.eps, rec.Key)
		stop = append(stop, ep)
	}
	g.decideLocked()
	g.mu.Unlock()
	// Stopping a prober waits for its goroutine, which may be waiting for
	// g.mu in onProbe: never with the lock held.
	for _, ep := range stop {
		ep.close()
	}
}

func indexOf(specs []spec, key string) int {
	for i := range specs {
		if specs[i].key == key {
			return i
		}
	}
	return -1
}

// close stops the endpoint's prober and retires its pool: idle
// connections close now, the others when their request ends; requests
// still in flight on it finish normally.
func (ep *endpoint) close() {
	if ep.stopProbe != nil {
		ep.stopProbe()
	}
	ep.rt.retire()
}

// onError records a resolver error. With a set already in use the resolver
// keeps serving it (last known good) and reports no error here.
func (g *group) onError(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.resolved, g.resErr = true, err
	if len(g.eps) == 0 {
		g.decideLocked()
	}
}
