package balancer

import (
	"fmt"
	"net/url"
	"testing"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// TestDefaultConfig_HandedToPolicyTrips: a DefaultConfig() handed to the
// policy as the balancer config, without ParseConfig, yields breakers that
// trip on UNAVAILABLE (the failure mask used to be computed only while
// parsing, so such a config ejected nothing). The policy is driven through
// its registered builder with the fake ClientConn of the pick benchmark;
// probing is off because fake SubConns carry no health producer.
func TestDefaultConfig_HandedToPolicyTrips(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HealthProbe.Enabled = false
	cc := &benchClientConn{}
	bal := grpcbalancer.Get(Name).Build(cc, grpcbalancer.BuildOptions{Target: resolver.Target{URL: url.URL{Scheme: "test", Path: "/trip"}}})
	defer bal.Close()
	eps := make([]resolver.Endpoint, 4)
	for i := range eps {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: fmt.Sprintf("10.0.0.%d:443", i+1)}}}
	}
	if err := bal.UpdateClientConnState(grpcbalancer.ClientConnState{ResolverState: resolver.State{Endpoints: eps}, BalancerConfig: cfg}); err != nil {
		t.Fatal(err)
	}
	for i := 0; cc.subConn(i) != nil; i++ {
		sc := cc.subConn(i)
		sc.setState(connectivity.Connecting)
		sc.setState(connectivity.Ready)
		sc.reportHealth(connectivity.Ready)
	}
	// The policy publishes from its own goroutine: wait for the picker over
	// all four (one over the first READY endpoint alone, the failing one,
	// has no other endpoint to send to once its breaker trips: a full
	// -race run once failed so).
	waitFor(t, "READY picker over 4 endpoints", func() bool {
		last, p := cc.pickers()
		gp, ok := p.(*grpcPicker)
		return last.ConnectivityState == connectivity.Ready && ok && gp.p.Len() == len(eps)
	})
	failing := cc.subConn(0)
	unavailable := grpcbalancer.DoneInfo{Err: status.Error(codes.Unavailable, "down"), BytesSent: true, BytesReceived: true}
	pick := func() grpcbalancer.SubConn {
		t.Helper()
		_, p := cc.pickers() // the latest: a trip republishes
		if p == nil {
			t.Fatal("no READY picker published")
		}
		res, err := p.Pick(grpcbalancer.PickInfo{})
		if err != nil {
			t.Fatalf("Pick() = %v", err)
		}
		if res.Done != nil {
			if res.SubConn == failing {
				res.Done(unavailable)
			} else {
				res.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
			}
		}
		return res.SubConn
	}
	failures := 0
	for i := 0; failures < cfg.Breaker.ConsecutiveFailures; i++ {
		if i == 1000 {
			t.Fatalf("the failing endpoint got %d picks in 1000", failures)
		}
		if pick() == failing {
			failures++
		}
	}
	for i := range 200 {
		if pick() == failing {
			t.Fatalf("pick %d after %d UNAVAILABLE went to the failing endpoint: its breaker did not trip", i, failures)
		}
	}
}
