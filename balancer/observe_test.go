package balancer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// observedClient dials the policy configured by lbJSON over eps with an
// in-memory MetricsRecorder, and returns the client, the recorder and the
// target label the balancer uses.
func observedClient(t *testing.T, lbJSON string, eps []resolver.Endpoint) (*grpc.ClientConn, testgrpc.TestServiceClient, *testutil.MetricsRecorder, string) {
	t.Helper()
	r := manual.NewBuilderWithScheme(fmt.Sprintf("obstest%d", time.Now().UnixNano()))
	r.InitialState(resolver.State{Endpoints: eps})
	mr := testutil.NewMetricsRecorder()
	cc, err := grpc.NewClient(r.Scheme()+":///obs",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithStatsHandler(mr),
		grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, Name, lbJSON)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, testgrpc.NewTestServiceClient(cc), mr, r.Scheme() + ":///obs"
}

func snapshotOf(t *testing.T, target string) (fulcrumz.Channel, bool) {
	t.Helper()
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Target == target {
			return ch, true
		}
	}
	return fulcrumz.Channel{}, false
}

func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestObserve_NoUsableEndpointProbesAndClose: two backends answer their
// probes NOT_SERVING and panic mode is off, so nothing is usable. Every
// fail-fast RPC then counts exactly once in no_usable_endpoint_picks;
// probes are counted by result with their durations; the state gauges and
// the snapshot say unhealthy with the probe's reason. Closing the channel
// removes its gauges and its snapshot.
func TestObserve_NoUsableEndpointProbesAndClose(t *testing.T) {
	f := startFleet(t, 2)
	cc, tc, mr, target := observedClient(t, `{"panicThresholdPercent":0,"slowStart":{"window":"0s"},
		"healthProbe":{"interval":"20ms","timeout":"15ms","unhealthyThreshold":1}}`, endpoints(f.Addrs()))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if _, err := tc.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("EmptyCall: %v", err)
	}
	// Both first probes passed (one RPC needs only one usable endpoint).
	usable := metricKey(metrics.Endpoints.Name, target, "usable")
	pollUntil(t, "both endpoints usable", func() bool { return mr.Gauges()[usable] == 2 })
	for _, be := range f {
		be.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	}
	unhealthy := metricKey(metrics.Endpoints.Name, target, "unhealthy")
	pollUntil(t, "both endpoints unhealthy", func() bool { return mr.Gauges()[unhealthy] == 2 })

	before := mr.Count(metrics.NoUsableEndpoint.Name, target)
	const rpcs = 10
	for i := 0; i < rpcs; i++ {
		if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err == nil {
			t.Fatal("EmptyCall succeeded with no usable endpoint")
		}
	}
	if got := mr.Count(metrics.NoUsableEndpoint.Name, target) - before; got != rpcs {
		t.Errorf("%s grew by %d over %d failed RPCs, want %d", metrics.NoUsableEndpoint.Name, got, rpcs, rpcs)
	}
	if got := mr.Count(metrics.Probes.Name, target, "healthy"); got < 2 {
		t.Errorf("%s{healthy} = %d, want >= 2 (the first probe of each backend)", metrics.Probes.Name, got)
	}
	if got := mr.Count(metrics.Probes.Name, target, "unhealthy"); got < 2 {
		t.Errorf("%s{unhealthy} = %d, want >= 2", metrics.Probes.Name, got)
	}
	if got := mr.Samples(metrics.ProbeDuration.Name, target); got < 4 {
		t.Errorf("%s: %d samples, want >= 4", metrics.ProbeDuration.Name, got)
	}
	g := mr.Gauges()
	if g[metricKey(metrics.Endpoints.Name, target, "usable")] != 0 || g[metricKey(metrics.PanicActive.Name, target)] != 0 {
		t.Errorf("gauges %v: want 0 usable, panic mode off", g)
	}
	ch, ok := snapshotOf(t, target)
	if !ok {
		t.Fatalf("snapshot has no channel %s", target)
	}
	for _, e := range ch.Endpoints {
		if e.State != "unhealthy" || !strings.Contains(e.Reason, "NOT_SERVING") || e.LastProbe == nil || e.LastProbe.Result != "unhealthy" {
			t.Errorf("snapshot endpoint %v: state %s (%s), last probe %+v; want unhealthy with NOT_SERVING", e.Addresses, e.State, e.Reason, e.LastProbe)
		}
	}

	cc.Close()
	if n := mr.Reporters(); n != 0 {
		t.Errorf("%d gauge reporters still registered after Close", n)
	}
	if _, ok := snapshotOf(t, target); ok {
		t.Errorf("snapshot still has channel %s after Close", target)
	}
}

// TestObserve_BreakerTransitionsByTargetState: a backend fails every RPC
// until its breaker opens, then recovers: its breaker goes open ->
// half-open -> closed, and breaker_transitions counts each target state.
func TestObserve_BreakerTransitionsByTargetState(t *testing.T) {
	f := startFleet(t, 2)
	_, tc, mr, target := observedClient(t, `{`+noProbe+`,"maxEjectionPercent":100,
		"breaker":{"consecutiveFailures":3,"openDuration":"50ms","halfOpenRequests":1}}`, endpoints(f.Addrs()))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	f[0].SetFailure(codes.Unavailable)
	open := func() int64 { return mr.Count(metrics.BreakerTransitions.Name, target, "open") }
	pollUntil(t, "a breaker to open", func() bool {
		tc.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true))
		return open() >= 1
	})
	f[0].SetFailure(codes.OK)
	closed := func() int64 { return mr.Count(metrics.BreakerTransitions.Name, target, "closed") }
	pollUntil(t, "the breaker to close again", func() bool {
		tc.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true))
		return closed() >= 1
	})
	if got := mr.Count(metrics.BreakerTransitions.Name, target, "half_open"); got < 1 {
		t.Errorf("%s{half_open} = %d, want >= 1 between open and closed", metrics.BreakerTransitions.Name, got)
	}
	if got := mr.Gauges()[metricKey(metrics.EjectionsActive.Name, target)]; got != 0 {
		t.Errorf("%s = %d after the breaker closed, want 0", metrics.EjectionsActive.Name, got)
	}
}

// metricKey is the MetricsRecorder's key of a metric with labels.
func metricKey(name string, labels ...string) string {
	return name + "{" + strings.Join(labels, ",") + "}"
}
