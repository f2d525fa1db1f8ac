package fulcrumhttp

import (
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// onUpdate applies a new endpoint set from the resolver; held says the
// registry answered empty and the resolver keeps these (attrs.EmptyHeld).
func (g *group) onUpdate(specs []endpointset.Spec, held bool) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.resolved, g.resErr = true, nil
	g.set.SetHeld(held)
	added, removed := g.set.Update(specs)
	for _, rec := range removed {
		// Gone before the probe budget is counted below.
		delete(g.eps, rec.Key)
	}
	var pspec probeSpec
	var pcfg probe.Config
	if g.t.cfg.probing() {
		pspec = g.t.probeSpec(g.route)
		pcfg = pspec.budgeted(len(g.eps) + len(added))
	}
	for _, rec := range added {
		sp := specs[indexOf(specs, rec.Key)]
		ep := &endpoint{rec: rec, addrs: sp.Addrs, rt: g.t.newPool(sp.Addrs)}
		rec.Value = ep
		g.eps[rec.Key] = ep
		// HTTP has no connection to watch: an endpoint is ready to take
		// requests at once (connections are dialled per request), and a
		// dead one is found by its failures and probes.
		g.set.SetConn(rec, endpointset.ConnReady)
		if g.t.cfg.probing() {
			ep.prober = startProber(ep.rt, pspec, pcfg, ep.addr(), func(p probe.Probe) {
				g.observeProbe(ep, p)
			}, func(healthy bool, reason string) {
				g.onProbe(ep, healthy, reason)
			})
		}
	}
	if g.t.cfg.probing() {
		g.rebudgetLocked(pcfg)
	}
	for _, sp := range specs {
		if ep := g.eps[sp.Key]; ep != nil {
			ep.weight = sp.Weight
		}
	}
	var stop []*endpoint
	for _, rec := range removed {
		ep := rec.Value.(*endpoint)
		ep.removed = true
		stop = append(stop, ep)
	}
	g.mu.Unlock()
	g.drv.Request()
	// Closing a prober waits for its goroutine, which may be waiting for
	// g.mu in onProbe: never with the lock held (probe.Loop).
	for _, ep := range stop {
		ep.close()
	}
}

// rebudgetLocked keeps the host within its probe budget as it grows or
// shrinks: when the budgeted interval of its current size, cfg's, differs
// from the one last applied by half or more either way, every prober takes
// it from its next wait (the restarted wait counts from now). Smaller
// changes leave running probers alone, so a host whose size drifts does not
// restart its waits at every update; new probers always start with cfg.
// Caller must hold g.mu (SetConfig never blocks).
func (g *group) rebudgetLocked(cfg probe.Config) {
	iv := time.Duration(cfg.Interval)
	if g.probeIv != 0 && 2*iv < 3*g.probeIv && 2*g.probeIv < 3*iv {
		return
	}
	g.probeIv = iv
	for _, ep := range g.eps {
		if ep.prober != nil {
			ep.prober.SetConfig(cfg)
		}
	}
}

func indexOf(specs []endpointset.Spec, key string) int {
	for i := range specs {
		if specs[i].Key == key {
			return i
		}
	}
	return -1
}

// close stops the endpoint's prober and retires its pool: idle
// connections close now, the others when their request ends; requests
// still in flight on it finish normally.
func (ep *endpoint) close() {
	if ep.prober != nil {
		ep.prober.Close()
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
		g.drv.Request()
	}
}
