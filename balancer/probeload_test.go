package balancer

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// countingHealth answers every Check with SERVING and counts them.
type countingHealth struct {
	healthgrpc.UnimplementedHealthServer
	checks atomic.Int64
}

func (h *countingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.checks.Add(1)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestProbeLoad_CappedPerChannel: a channel over 100 endpoints (one gRPC
// server listening on 100 ports) with a 100ms probe interval would send
// 1 000 probes a second; with maxProbesPerSecond = 200 each connection is
// probed every 500ms and the channel sends about 200 a second. Without the
// cap it sends the configured 1 000 (measured too, to show the cap is what
// makes the difference). Shrunk to 10 endpoints, the capped channel goes
// back to the configured interval. Bounds are loose (a factor of 1.5 around the
// expected count; the two cases are 5x apart) because timers run late on
// a loaded machine.
func TestProbeLoad_CappedPerChannel(t *testing.T) {
	const n = 100
	const window = 1500 * time.Millisecond
	for _, tc := range []struct {
		name string
		cap  float64
		want float64 // probes per second
	}{
		{"capped", 200, 200},
		{"uncapped", 0, n / 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &countingHealth{}
			srv := grpc.NewServer()
			healthgrpc.RegisterHealthServer(srv, h)
			t.Cleanup(srv.Stop)
			eps := make([]resolver.Endpoint, n)
			for i := range eps {
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go srv.Serve(lis)
				eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: lis.Addr().String()}}}
			}
			c := newClient(t, fmt.Sprintf(`{"healthProbe":{"interval":"100ms","timeout":"100ms","jitter":0,"unhealthyThreshold":5,"maxProbesPerSecond":%g},"slowStart":{"window":"0s"}}`, tc.cap), eps)
			b := c.balancer(t)
			waitFor(t, "every endpoint usable", func() bool {
				usable := 0
				for _, r := range results(b) {
					if r.State == endpointset.Usable {
						usable++
					}
				}
				return usable == n
			})
			before := h.checks.Load()
			start := time.Now()
			time.Sleep(window)
			rate := float64(h.checks.Load()-before) / time.Since(start).Seconds()
			t.Logf("%d endpoints, interval 100ms, maxProbesPerSecond %g: %.0f probes/s (expected %.0f)", n, tc.cap, rate, tc.want)
			// A probe loop never runs more often than its interval, so the
			// upper bound is firm; late timers on a loaded machine only
			// lower the rate, so the lower bound is loose. The two cases
			// (200 and 1 000) stay apart either way.
			if rate > 1.25*tc.want || rate < tc.want/2.5 {
				t.Errorf("channel sent %.0f probes/s, want %.0f (at most 1.25x, at least 1/2.5)", rate, tc.want)
			}
			if tc.cap == 0 {
				return
			}
			// Shrunk to 10 endpoints, the channel is under its budget
			// again: the remaining connections go back to the configured
			// 100ms (100 probes/s; 20/s if they kept the scaled 500ms).
			c.r.UpdateState(resolver.State{Endpoints: eps[:10]})
			waitFor(t, "10 endpoints", func() bool { return len(results(b)) == 10 })
			time.Sleep(300 * time.Millisecond) // the restarted probers' first waits
			before, start = h.checks.Load(), time.Now()
			time.Sleep(window)
			rate = float64(h.checks.Load()-before) / time.Since(start).Seconds()
			t.Logf("shrunk to 10 endpoints: %.0f probes/s (expected 100)", rate)
			if rate > 125 || rate < 40 {
				t.Errorf("after shrinking to 10 endpoints the channel sent %.0f probes/s, want 100 (at most 125; 20 would mean the scaled interval stayed)", rate)
			}
		})
	}
}
