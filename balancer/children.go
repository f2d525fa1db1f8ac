package balancer

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/attributes"
	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// child is the pick_first balancer of one endpoint and the ClientConn it
// sees. It embeds the parent's ClientConn to intercept UpdateState (the
// child's state goes to the engine, not to grpc-go) and NewSubConn (to
// learn when a connection becomes READY and probe it).
type child struct {
	grpcbalancer.ClientConn

	b   *wlrBalancer
	rec *endpointset.Record // read-only

	// mu serialises calls into lb, as grpc-go does for a top-level
	// balancer: lb is driven from the balancer's goroutine and from run.
	mu     sync.Mutex
	lb     grpcbalancer.Balancer // built on first update
	closed bool                  // guarded by mu and b.mu

	// Guarded by b.mu.
	ep        resolver.Endpoint
	updated   bool               // ep was handed to lb
	state     grpcbalancer.State // last state lb reported
	readySC   *subConn           // the SubConn that is READY, if any
	stopProbe func()             // stops the prober of readySC
}

func (c *child) update(ep resolver.Endpoint, attrs *attributes.Attributes) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.lb == nil {
		c.ClientConn = c.b.cc
		c.lb = pickFirstBuilder.Build(c, c.b.bopts)
	}
	// Enable the health listener so grpc's own healthCheckConfig (and
	// outlier detection) keeps working inside pick_first.
	c.lb.UpdateClientConnState(grpcbalancer.ClientConnState{
		ResolverState: pickfirst.EnableHealthListener(resolver.State{
			Endpoints:  []resolver.Endpoint{ep},
			Attributes: attrs,
		}),
	})
}

func (c *child) exitIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.lb != nil {
		c.lb.ExitIdle()
	}
}

func (c *child) close() {
	c.b.mu.Lock()
	stop := c.stopProbe
	c.stopProbe, c.readySC = nil, nil
	c.b.mu.Unlock()
	if stop != nil {
		stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.b.mu.Lock()
	c.closed = true
	c.b.mu.Unlock()
	if c.lb != nil {
		c.lb.Close()
	}
}

var connOf = map[connectivity.State]endpointset.Conn{
	connectivity.Idle:             endpointset.ConnIdle,
	connectivity.Connecting:       endpointset.ConnConnecting,
	connectivity.Ready:            endpointset.ConnReady,
	connectivity.TransientFailure: endpointset.ConnFailure,
}

// UpdateState receives pick_first's state: it goes to the engine, and the
// run loop publishes the decision.
func (c *child) UpdateState(st grpcbalancer.State) {
	b := c.b
	b.mu.Lock()
	if c.closed || b.closed {
		b.mu.Unlock()
		return
	}
	c.state = st
	if conn, ok := connOf[st.ConnectivityState]; ok {
		b.set.SetConn(c.rec, conn)
	}
	if st.ConnectivityState == connectivity.Idle {
		// Reconnect, as endpointsharding does; from run, because calling
		// back into pick_first from inside its own UpdateState would
		// re-enter it.
		b.idle = append(b.idle, c)
	}
	b.mu.Unlock()
	b.requestDecision()
}

// NewSubConn intercepts pick_first's SubConns to learn when one becomes
// READY, so it can be probed and held back until warm, and when pick_first
// shuts one down.
func (c *child) NewSubConn(addrs []resolver.Address, opts grpcbalancer.NewSubConnOptions) (grpcbalancer.SubConn, error) {
	sc := &subConn{}
	old := opts.StateListener
	opts.StateListener = func(st grpcbalancer.SubConnState) {
		// Before pick_first sees the state, so that the engine knows of
		// the new connection (and holds it back until its first probe)
		// before the child reports READY.
		c.onSubConnState(sc, st)
		old(st)
	}
	inner, err := c.b.cc.NewSubConn(addrs, opts)
	if err != nil {
		return nil, err
	}
	sc.SubConn = inner
	return sc, nil
}

// subConn is a SubConn of a child's pick_first, wrapped to know when
// pick_first shuts it down. grpc-go needs its own SubConn back in a
// PickResult: grpcPicker.Pick unwraps it.
type subConn struct {
	grpcbalancer.SubConn
	shut atomic.Bool
}

// Shutdown records that pick_first has let this SubConn go before passing
// the call on.
func (sc *subConn) Shutdown() {
	sc.shut.Store(true)
	sc.SubConn.Shutdown()
}

// onSubConnState starts a prober when a SubConn becomes READY and stops it
// when it leaves READY.
func (c *child) onSubConnState(sc *subConn, st grpcbalancer.SubConnState) {
	b := c.b
	b.mu.Lock()
	if c.closed || b.closed {
		b.mu.Unlock()
		return
	}
	if sc.shut.Load() && st.ConnectivityState != connectivity.Shutdown {
		// A state that was under way when pick_first shut the SubConn
		// down (with several addresses, e.g. dual stack, pick_first
		// attempts several and keeps one). pick_first ignores it; so
		// does the engine: taking a late READY for a new connection would
		// stop the live connection's prober and send it back to warm-up.
		b.mu.Unlock()
		return
	}
	var stop func()
	probe := false
	if st.ConnectivityState == connectivity.Ready {
		stop, c.stopProbe, c.readySC = c.stopProbe, nil, sc
		b.set.NewConnection(c.rec)
		probe = b.cfg.HealthProbe.Enabled
	} else if c.readySC == sc {
		stop, c.stopProbe, c.readySC = c.stopProbe, nil, nil
	}
	pcfg := b.probeConfigLocked()
	b.mu.Unlock()

	// Never stop a prober while holding b.mu: stop waits for a running
	// verdict callback, which takes b.mu.
	if stop != nil {
		stop()
	}
	if probe {
		c.startProbe(sc, pcfg)
	}
}

// startProbe starts probing sc and keeps the stop function unless the
// SubConn moved on meanwhile.
func (c *child) startProbe(sc *subConn, pcfg healthprobe.GRPCConfig) {
	b := c.b
	stop := healthprobe.StartWithObserver(sc.SubConn, pcfg, func(healthy bool, reason string) {
		b.mu.Lock()
		if c.readySC != sc || c.closed || b.closed {
			b.mu.Unlock()
			return
		}
		b.set.SetHealth(c.rec, healthy, reason)
		b.mu.Unlock()
		b.requestDecision()
	}, c.observeProbe)
	b.mu.Lock()
	if c.readySC != sc || c.closed || b.closed {
		b.mu.Unlock()
		stop()
		return
	}
	old := c.stopProbe
	c.stopProbe = stop
	b.mu.Unlock()
	if old != nil {
		old()
	}
}

// restartProbe applies a new probe configuration to the READY connection.
// The new prober joins the running probe loop before the old one leaves, so
// the verdict the engine holds stays valid: a config change does not send
// the channel back to warm-up.
func (c *child) restartProbe() {
	b := c.b
	b.mu.Lock()
	sc := c.readySC
	enabled := b.cfg.HealthProbe.Enabled
	pcfg := b.probeConfigLocked()
	var stop func()
	if !enabled {
		stop, c.stopProbe = c.stopProbe, nil
	}
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	if sc != nil && enabled {
		c.startProbe(sc, pcfg)
	}
}
