package balancer

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// TestHeldEmptyAnswer_FailsAtOnceWhenNothingIsUsable (issue 21, empty
// answers): the resolver keeps a registry's endpoints for emptyGrace when
// the registry answers empty, and marks the state held. While held and
// every endpoint fails its probe, RPCs fail at once with the registry's
// answer; unheld, panic mode sends them to the endpoints (which, alive but
// NOT_SERVING, answer).
func TestHeldEmptyAnswer_FailsAtOnceWhenNothingIsUsable(t *testing.T) {
	f := startFleet(t, 2)
	eps := endpoints(f.Addrs())
	c := newClient(t, `{"latencyAware":false,"slowStart":{"window":"0s"},"healthProbe":{"interval":"20ms","timeout":"15ms"}}`, eps)
	waitAllServing(t, c, f)
	for _, b := range f {
		b.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	rpc := func() error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := c.tc.EmptyCall(ctx, &testpb.Empty{})
		return err
	}
	poll := func(what string, ok func(error) bool) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(defaultTestTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if err = rpc(); ok(err) {
				return
			}
		}
		t.Fatalf("timed out waiting for %s; last RPC: %v", what, err)
	}
	b := c.balancer(t)
	waitCounts(t, b, "both unhealthy", func(c endpointset.Counts, _ endpointset.ZoneReport) bool { return c.Unhealthy == 2 })
	if err := rpc(); err != nil {
		t.Fatalf("not held, every endpoint unhealthy: %v; want panic mode to serve it", err)
	}
	held := func(on bool) {
		c.r.UpdateState(attrs.SetEmptyHeld(resolver.State{Endpoints: eps}, on))
	}
	held(true)
	poll("RPCs failing with the registry's answer", func(err error) bool {
		return status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "the registry reports no endpoints")
	})
	held(false)
	poll("panic mode again once the hold ends", func(err error) bool { return err == nil })
}
