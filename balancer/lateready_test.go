package balancer

import (
	"testing"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// TestRegression_LateReadyFromShutSubConn (issue 21 b): with several
// addresses (dual stack), pick_first attempts several SubConns and shuts
// down the ones it does not keep; a READY already under way for one of
// them can arrive after the Shutdown, followed by its SHUTDOWN. Taken for a
// new connection, that late READY stopped the live connection's prober,
// reset its verdict and started a prober the SHUTDOWN then stopped: the
// endpoint sat in warm-up, never probed again. Here the late SubConn is the
// live one's twin (same transport), marked shut as pick_first's Shutdown
// marks it, and its two late states are delivered as grpc-go would.
func TestRegression_LateReadyFromShutSubConn(t *testing.T) {
	f := startFleet(t, 1)
	c := newClient(t, `{"slowStart":{"window":"0s"},"healthProbe":{"interval":"50ms","timeout":"40ms"}}`, endpoints(f.Addrs()))
	b := c.balancer(t)
	waitAllServing(t, c, f)
	key := f.Addrs()[0]
	waitFor(t, "the endpoint usable", func() bool { return results(b)[key].State == endpointset.Usable })

	b.mu.Lock()
	ch := b.children[key]
	live := ch.readySC
	b.mu.Unlock()
	if live == nil {
		t.Fatal("no READY SubConn recorded for the endpoint")
	}
	late := &subConn{SubConn: live.SubConn}
	late.shut.Store(true) // what pick_first's Shutdown does, without closing the shared transport
	ch.onSubConnState(late, grpcbalancer.SubConnState{ConnectivityState: connectivity.Ready})
	ch.onSubConnState(late, grpcbalancer.SubConnState{ConnectivityState: connectivity.Shutdown})

	b.mu.Lock()
	ready, probing := ch.readySC, ch.stopProbe != nil
	b.mu.Unlock()
	if ready != live || !probing {
		t.Fatalf("after a late READY+SHUTDOWN of a shut SubConn: live SubConn kept = %t, prober running = %t; want both", ready == live, probing)
	}
	b.requestDecision()
	waitPublished(t, b)
	if r := results(b)[key]; r.State != endpointset.Usable {
		t.Fatalf("endpoint state after the late states = %v (%s), want usable", r.State, r.Reason)
	}
	if err := call(c, defaultTestTimeout); err != nil {
		t.Fatalf("RPC after the late states: %v", err)
	}
}
