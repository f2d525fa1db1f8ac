package balancer

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// fastProbe probes every 50ms with a 50ms timeout.
const fastProbe = `"healthProbe":{"interval":"50ms","timeout":"50ms","jitter":0,"unhealthyThreshold":3,"healthyThreshold":2},"slowStart":{"window":"0s"}`

// loadUntil sends RPCs from callers goroutines until stop is closed and
// returns the number of failures. Each RPC has a 2 s deadline.
func loadUntil(ctx context.Context, c *client, callers int, stop <-chan struct{}) func() (calls, fails int64) {
	var wg sync.WaitGroup
	var n, failed atomic.Int64
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := c.tc.UnaryCall(rctx, &testpb.SimpleRequest{})
				cancel()
				n.Add(1)
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	return func() (int64, int64) { wg.Wait(); return n.Load(), failed.Load() }
}

// TestHealth_NotServingGetsNoTraffic: a backend whose health service says
// NOT_SERVING gets no application RPCs from the first probe that sees it
// until it says SERVING again; no application RPC fails; the user set no
// healthCheckConfig.
func TestHealth_NotServingGetsNoTraffic(t *testing.T) {
	f := startFleet(t, 3)
	c := newClient(t, `{`+fastProbe+`}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	ctx, cancel := context.WithTimeout(context.Background(), 3*defaultTestTimeout)
	defer cancel()
	stop := make(chan struct{})
	wait := loadUntil(ctx, c, 4, stop)

	f[0].Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// From the decision that follows the probe seeing it, the backend must
	// receive nothing: counted over the next 400 RPCs, not a time window.
	b := c.balancer(t)
	waitFor(t, "probe sees NOT_SERVING", func() bool { return results(b)[f[0].Addr].State == endpointset.Unhealthy })
	waitPublished(t, b)
	// The background load may still have RPCs picked by the previous
	// picker on their way to the backend: wait until they have ended.
	waitFor(t, "RPCs picked before the decision ended", func() bool { return hotEndpoints(b)[f[0].Addr].InFlight() == 0 })
	before := f[0].Hits()
	if fails := run(ctx, c, 4, 400); fails != 0 {
		t.Errorf("%d RPCs failed with one backend NOT_SERVING", fails)
	}
	if got := f[0].Hits() - before; got != 0 {
		t.Errorf("NOT_SERVING backend received %d application RPCs", got)
	}
	f[0].Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "traffic back on the recovered backend", func() bool { return f[0].Hits() > before+10 })
	close(stop)
	if calls, fails := wait(); fails != 0 {
		t.Errorf("%d of %d application RPCs failed", fails, calls)
	}
}

// TestHealth_HungBackendIsEjected: a backend whose RPC handlers and health
// Check both hang (connection and keepalives fine) is marked unhealthy
// within unhealthyThreshold x (interval + timeout) and traffic moves away.
func TestHealth_HungBackendIsEjected(t *testing.T) {
	f := startFleet(t, 3)
	c := newClient(t, `{`+fastProbe+`}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	b := c.balancer(t)

	f[0].SetHung(true)
	hungAt := time.Now()
	waitFor(t, "hung backend marked unhealthy", func() bool {
		return results(b)[f[0].Addr].State == endpointset.Unhealthy
	})
	waitPublished(t, b)
	// Timing is not asserted (2 shared cores); 3 x (50ms + 50ms) = 300ms
	// is the expectation.
	t.Logf("hung backend marked unhealthy after %v", time.Since(hungAt))

	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	f.ResetHits()
	if fails := run(ctx, c, 4, 400); fails != 0 {
		t.Errorf("%d RPCs failed after the hung backend was ejected", fails)
	}
	if h := f[0].Hits(); h != 0 {
		t.Errorf("hung backend received %d RPCs after being marked unhealthy", h)
	}
}

// TestHealth_WarmupAndSlowStart: a backend added while running gets no
// application RPC before its first successful probe; then its weight ramps
// over the slow-start window as Envoy's formula says, on the engine's
// (fake) clock: max(elapsed, 1s)/window, floored at minWeightPercent, and
// the picker follows it.
func TestHealth_WarmupAndSlowStart(t *testing.T) {
	clock := useFakeClock(t)
	f := startFleet(t, 3)
	eps := endpoints(f.Addrs())
	// The latency term is off: on zero-delay loopback backends under -race
	// it reacts to scheduling noise (by design), and this test is about
	// slow start.
	c := newClient(t, `{"latencyAware":false,"healthProbe":{"interval":"50ms","timeout":"50ms","jitter":0},"slowStart":{"window":"4s","minWeightPercent":5}}`, eps[:2])
	waitAllServing(t, c, f[:2])
	b := c.balancer(t)

	// The new backend is up but says NOT_SERVING: it must stay unused.
	f[2].Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	c.r.UpdateState(resolver.State{Endpoints: eps})
	ctx, cancel := context.WithTimeout(context.Background(), 3*defaultTestTimeout)
	defer cancel()
	waitFor(t, "new backend probed unhealthy", func() bool { return results(b)[f[2].Addr].State == endpointset.Unhealthy })
	waitPublished(t, b)
	if fails := run(ctx, c, 4, 200); fails != 0 {
		t.Fatalf("%d RPCs failed", fails)
	}
	if h := f[2].Hits(); h != 0 {
		t.Fatalf("backend received %d application RPCs before its first successful probe", h)
	}

	// Healthy now: the ramp starts at max(0, 1s)/4s = 25 % of its weight.
	f[2].Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "new backend usable", func() bool { return results(b)[f[2].Addr].State == endpointset.Usable })
	for _, step := range []struct {
		advance time.Duration
		want    float64
		ramping bool
	}{
		{0, 0.25, true},
		{2 * time.Second, 0.5, true},
		{time.Second, 0.75, true},
		{time.Second, 1, false},
	} {
		clock.advance(b, step.advance)
		waitFor(t, fmt.Sprintf("weight %.2f", step.want), func() bool {
			r := results(b)[f[2].Addr]
			return math.Abs(r.Weight-step.want) < 1e-9 && r.Ramping == step.ramping
		})
		if step.want != 0.25 {
			continue
		}
		waitPublished(t, b)
		// The picker follows: one RPC at a time, picks follow weights
		// 1 : 1 : 0.25, so the new backend's share is 0.25/2.25 = 11.1 %
		// (binomial sd over 900 RPCs: 1.0 point; 4 points is 4 sd).
		f.ResetHits()
		if fails := run(ctx, c, 1, 900); fails != 0 {
			t.Fatalf("%d RPCs failed during slow start", fails)
		}
		if s := shares(f.Hits())[2]; math.Abs(s-11.1) > 4 {
			t.Errorf("new backend's share at 25 %% weight: %.1f%%, want 11.1 ± 4", s)
		}
	}
}

// TestHealth_ProberChurn: 50 endpoints added and removed in a loop under
// load; no probe continues after removal and no goroutine outlives Close.
func TestHealth_ProberChurn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f, err := testutil.StartFleet(50, testutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	eps := endpoints(f.Addrs())
	c := newClient(t, `{"healthProbe":{"interval":"20ms","timeout":"20ms"}}`, eps[:2])
	ctx, cancel := context.WithTimeout(context.Background(), 3*defaultTestTimeout)
	defer cancel()
	stop := make(chan struct{})
	wait := loadUntil(ctx, c, 4, stop)
	for round := 0; round < 5; round++ {
		c.r.UpdateState(resolver.State{Endpoints: eps})
		waitFor(t, "probes on all 50", func() bool {
			for _, be := range f {
				if be.Checks() == 0 {
					return false
				}
			}
			return true
		})
		c.r.UpdateState(resolver.State{Endpoints: eps[:2]})
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	if calls, fails := wait(); fails != 0 {
		t.Errorf("%d of %d RPCs failed during churn", fails, calls)
	}
	// Removed endpoints: no probe after removal has settled.
	time.Sleep(100 * time.Millisecond)
	var before []int64
	for _, be := range f[2:] {
		before = append(before, be.Checks())
	}
	time.Sleep(300 * time.Millisecond)
	for i, be := range f[2:] {
		if n := be.Checks() - before[i]; n != 0 {
			t.Errorf("removed backend %s was probed %d more times", be.Addr, n)
		}
	}
	if f[0].Checks() == 0 {
		t.Errorf("remaining backend never probed")
	}
	c.cc.Close()
}
