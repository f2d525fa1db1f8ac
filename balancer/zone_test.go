package balancer

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// waitCounts polls the engine's last decision until cond holds.
func waitCounts(t *testing.T, b *wlrBalancer, what string, cond func(endpointset.Counts, endpointset.ZoneReport) bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for {
		c, _ := b.set.Counts()
		z := b.set.Zones()
		if cond(c, z) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: counts %+v, zones %+v", what, c, z)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zoneHits returns the hits of zone a (backends 0-2) and b (3-5), and
// resets them.
func zoneHits(f testutil.Fleet) (a, b int64) {
	for i, h := range f.Hits() {
		if i < 3 {
			a += h
		} else {
			b += h
		}
	}
	f.ResetHits()
	return a, b
}

// TestZones_GRPC: six real backends, three in the client's zone "a" and
// three in "b". While zone a is healthy it takes every RPC; with two of
// its three backends failing their probes, 1 - 1.4/3 (53 %) of RPCs
// spill to zone b and none is lost; once they recover, every RPC is local
// again.
func TestZones_GRPC(t *testing.T) {
	f := startFleet(t, 6)
	eps := make([]resolver.Endpoint, 6)
	for i, a := range f.Addrs() {
		eps[i] = attrs.SetZone(resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}, string(rune('a'+i/3)))
	}
	c := newClient(t, `{"localZone":"a","latencyAware":false,"slowStart":{"window":"0s"},"healthProbe":{"interval":"20ms","timeout":"15ms"}}`, eps)
	b := c.balancer(t)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	healthy := func(c endpointset.Counts, z endpointset.ZoneReport) bool {
		return c.Usable == 6 && z.Split.Aware && z.Split.Spill == 0
	}
	allLocal := func(when string) {
		t.Helper()
		waitCounts(t, b, when+": six usable endpoints, no spill", healthy)
		f.ResetHits()
		if fails := run(ctx, c, 4, 400); fails != 0 {
			t.Fatalf("%s: %d of 400 RPCs failed", when, fails)
		}
		if a, bb := zoneHits(f); a != 400 || bb != 0 {
			t.Fatalf("%s: %d RPCs in a, %d in b; want all 400 in a", when, a, bb)
		}
	}
	allLocal("healthy")

	for _, i := range []int{0, 1} {
		f[i].Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	waitCounts(t, b, "two unhealthy local endpoints", func(c endpointset.Counts, z endpointset.ZoneReport) bool {
		return c.Unhealthy == 2 && z.Split.Spill > 0.5
	})
	f.ResetHits()
	const n = 1000
	if fails := run(ctx, c, 4, n); fails != 0 {
		t.Fatalf("%d of %d RPCs failed while two local backends were down", fails, n)
	}
	hits := f.Hits()
	a, bb := zoneHits(f)
	remote := float64(bb) / n
	// Health alone spills 53.3 % (binomial sd 1.6 points); the load band
	// may add a little while the one healthy local backend is busy.
	if hits[0] != 0 || hits[1] != 0 || remote < 0.46 || remote > 0.75 {
		t.Fatalf("two of three local down: hits %v (%d local, %d remote, %.1f %% remote); want none on the two, 46-75 %% remote", hits, a, bb, 100*remote)
	}

	for _, i := range []int{0, 1} {
		f[i].Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	allLocal("after recovery")
	if z := b.set.Zones(); z.LocalPicks < 800 || z.RemotePicks < 400 {
		t.Fatalf("Zones() = %+v: picks by locality do not add up to the RPCs sent", z)
	}
}
