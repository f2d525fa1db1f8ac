package balancer

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// Regression tests of the defects of issue 9, written against RPC
// behaviour only (no internals), so that each also runs against the code
// before the engine, where it fails.

// call sends one unary RPC with its own deadline and returns its error.
func call(c *client, d time.Duration, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := c.tc.UnaryCall(ctx, &testpb.SimpleRequest{}, opts...)
	return err
}

// avoids sends serial RPCs until n in a row miss be (or the test timeout).
func avoids(t *testing.T, c *client, be *testutil.Backend, n int) {
	t.Helper()
	waitFor(t, "traffic off "+be.Addr, func() bool {
		for range n {
			before := be.Hits()
			call(c, 200*time.Millisecond)
			if be.Hits() != before {
				return false
			}
		}
		return true
	})
}

// TestRegression_PanicModeEndsWhenEjectionsExpire (issue 9a): one backend
// hung (probes time out), two fail fast until ejected: 1 of 4 usable is
// below panicThresholdPercent 50, panic mode. The two heal. Panic mode must
// end once their open periods are over (nothing else happens: in panic
// mode breakers see no calls), so the hung backend gets no traffic again
// and breakers gate again: a backend failing again is ejected after
// consecutiveFailures. Before the engine, panic mode never ended.
func TestRegression_PanicModeEndsWhenEjectionsExpire(t *testing.T) {
	f := startFleet(t, 4)
	// Probes every 100ms with a 100ms timeout: with 30ms, the hung backend
	// got an RPC after panic mode should have ended once in a full CI run
	// (packages in parallel on 2 cores). The likely cause, not reproduced:
	// a healthy backend's probe timed out under load, its one unhealthy
	// verdict took the usable share below 50 % and panic mode came back.
	// 100ms still detects the hang well within the test's waits.
	c := newClient(t, `{"latencyAware":false,"slowStart":{"window":"0s"},"maxEjectionPercent":100,"panicThresholdPercent":50,
		"healthProbe":{"interval":"100ms","timeout":"100ms","jitter":0,"unhealthyThreshold":1,"healthyThreshold":1},
		"breaker":{"consecutiveFailures":3,"failureRatio":0,"openDuration":"300ms","halfOpenRequests":1}}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	f[0].SetHung(true)
	avoids(t, c, f[0], 20)

	f.ResetHits()
	f[1].SetFailure(codes.Unavailable)
	f[2].SetFailure(codes.Unavailable)
	// Both tripped: panic mode, whose proof is that the hung backend gets
	// traffic again.
	waitFor(t, "panic mode", func() bool {
		call(c, 200*time.Millisecond)
		return f[0].Hits() > 0
	})
	f[1].SetFailure(codes.OK)
	f[2].SetFailure(codes.OK)
	// Panic over: the hung backend is avoided again.
	avoids(t, c, f[0], 40)

	f[2].SetFailure(codes.Unavailable)
	f.ResetHits()
	fails := 0
	for range 100 {
		if call(c, 200*time.Millisecond) != nil {
			fails++
		}
	}
	if h := f[2].Hits(); h > 3 {
		t.Errorf("backend failing again received %d RPCs, want at most consecutiveFailures 3: breakers do not gate", h)
	}
	if h := f[0].Hits(); h != 0 {
		t.Errorf("hung backend received %d RPCs after panic mode should have ended", h)
	}
	if fails > 3 {
		t.Errorf("%d of 100 RPCs failed, want at most 3", fails)
	}
}

// TestRegression_WaitForReadyResumesWhenOpenPeriodEnds (issue 9b): with
// panic mode off and every endpoint ejected, a wait-for-ready RPC waits;
// the backends heal; it must go through when the first open period ends,
// with no other RPC to wake the breakers.
func TestRegression_WaitForReadyResumesWhenOpenPeriodEnds(t *testing.T) {
	f := startFleet(t, 2)
	c := newClient(t, `{"latencyAware":false,"healthProbe":{"enabled":false},"maxEjectionPercent":100,"panicThresholdPercent":0,
		"breaker":{"consecutiveFailures":2,"failureRatio":0,"openDuration":"300ms","halfOpenRequests":1}}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	for _, be := range f {
		be.SetFailure(codes.Unavailable)
	}
	waitFor(t, "every endpoint ejected", func() bool {
		err := call(c, time.Second)
		return err != nil && !strings.Contains(err.Error(), "configured to fail")
	})
	for _, be := range f {
		be.SetFailure(codes.OK)
	}
	start := time.Now()
	if err := call(c, 5*time.Second, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("wait-for-ready RPC after the backends healed: %v (after %v), want success once the open period (300ms) ends", err, time.Since(start))
	}
}

// TestRegression_UnreachableEndpointDoesNotHoldRPCs (issue 9c): one READY
// endpoint that is unhealthy plus one that never connected: with panic
// mode off nothing is usable and nothing is on its way, so a fail-fast RPC
// fails at once with the reason instead of waiting for its deadline.
func TestRegression_UnreachableEndpointDoesNotHoldRPCs(t *testing.T) {
	f := startFleet(t, 1)
	f[0].Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.Addr().String()
	lis.Close() // nothing listens there any more: connection refused
	c := newClient(t, `{"panicThresholdPercent":0,"healthProbe":{"interval":"30ms","timeout":"30ms"}}`, endpoints([]string{f[0].Addr, dead}))
	waitFor(t, "the unhealthy backend probed", func() bool { return f[0].Checks() > 0 })
	var err2 error
	waitFor(t, "a fail-fast RPC failing with the reason", func() bool {
		err2 = call(c, 2*time.Second)
		return status.Code(err2) == codes.Unavailable
	})
	if !strings.Contains(err2.Error(), "no usable endpoint") {
		t.Errorf("RPC error %v, want UNAVAILABLE naming why no endpoint is usable", err2)
	}
}

// TestRegression_ProbeConfigChangeKeepsVerdicts (issue 9d): a change of
// the healthProbe settings restarts the probers with the new settings but
// keeps the verdicts: the channel stays READY and RPCs keep flowing,
// instead of going back to CONNECTING for a probe round.
func TestRegression_ProbeConfigChangeKeepsVerdicts(t *testing.T) {
	f := startFleet(t, 2)
	eps := endpoints(f.Addrs())
	c := newClient(t, `{"healthProbe":{"interval":"1s","timeout":"100ms"}}`, eps)
	waitAllServing(t, c, f)
	if st := c.cc.GetState(); st != connectivity.Ready {
		t.Fatalf("channel %v, want READY", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	changed := make(chan bool, 1)
	go func() { changed <- c.cc.WaitForStateChange(ctx, connectivity.Ready) }()
	sc := c.r.CC().ParseServiceConfig(`{"loadBalancingConfig":[{"weighted_least_request":{"healthProbe":{"interval":"40ms","timeout":"20ms"}}}]}`)
	if sc.Err != nil {
		t.Fatal(sc.Err)
	}
	checks := f[0].Checks()
	c.r.UpdateState(resolver.State{Endpoints: eps, ServiceConfig: sc})
	if <-changed {
		t.Errorf("channel left READY (now %v) when only the probe settings changed", c.cc.GetState())
	}
	if f[0].Checks() < checks+3 {
		t.Errorf("%d probes in the second after the change to a 40ms interval, want the new interval in force", f[0].Checks()-checks)
	}
}

// TestRegression_StuckTrialDoesNotEjectForever (issue 9e): the half-open
// trial RPC after an open period never finishes — a unary RPC without
// deadline to a server that hangs, or a long-lived stream. The endpoint
// (the only one, panic mode off) must not stay ejected for ever: after
// breaker.trialTimeout the next RPC is admitted as a new trial, succeeds
// and closes the breaker.
func TestRegression_StuckTrialDoesNotEjectForever(t *testing.T) {
	for _, kind := range []string{"unary without deadline", "long-lived stream"} {
		t.Run(kind, func(t *testing.T) {
			f := startFleet(t, 1)
			c := newClient(t, `{"latencyAware":false,"healthProbe":{"enabled":false},"panicThresholdPercent":0,"maxEjectionPercent":100,
				"breaker":{"consecutiveFailures":2,"failureRatio":0,"openDuration":"200ms","halfOpenRequests":1,"trialTimeout":"300ms"}}`, endpoints(f.Addrs()))
			waitAllServing(t, c, f)
			f[0].SetFailure(codes.Unavailable)
			waitFor(t, "the endpoint ejected", func() bool {
				err := call(c, time.Second)
				return err != nil && !strings.Contains(err.Error(), "configured to fail")
			})
			f[0].SetFailure(codes.OK)
			trialCtx, cancelTrial := context.WithCancel(context.Background())
			defer cancelTrial()
			before := f[0].Hits()
			if kind == "unary without deadline" {
				f[0].SetHung(true)
				go c.tc.UnaryCall(trialCtx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
			} else {
				// A stream that stays open: the server answers nothing
				// until the client sends, which it never does.
				go func() {
					if s, err := c.tc.FullDuplexCall(trialCtx, grpc.WaitForReady(true)); err == nil {
						s.Recv()
					}
				}()
			}
			waitFor(t, "the trial on the server", func() bool { return f[0].Hits() > before })
			f[0].SetHung(false)
			if err := call(c, 5*time.Second, grpc.WaitForReady(true)); err != nil {
				t.Fatalf("RPC after the trial got stuck: %v, want a new trial after trialTimeout (300ms) and success", err)
			}
		})
	}
}
