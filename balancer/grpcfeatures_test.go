package balancer

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking for healthCheckConfig
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// dialServiceConfig dials eps through a manual resolver with a full
// service config (not only the policy's part).
func dialServiceConfig(t *testing.T, sc string, eps []resolver.Endpoint) testgrpc.TestServiceClient {
	t.Helper()
	r := manual.NewBuilderWithScheme(fmt.Sprintf("wlrsc%d", len(eps)))
	r.InitialState(resolver.State{Endpoints: eps})
	cc, err := grpc.NewClient(r.Scheme()+":///test",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// TestPolicy_HealthCheckConfigKeepsWorking: grpc-go's own client health
// checking (healthCheckConfig, the Watch stream) still works through the
// policy's pick_first children, with Fulcrum's own probing off: a backend
// that reports NOT_SERVING gets no RPCs and none fail.
func TestPolicy_HealthCheckConfigKeepsWorking(t *testing.T) {
	f := startFleet(t, 2)
	tc := dialServiceConfig(t, `{"loadBalancingConfig":[{"weighted_least_request":{"healthProbe":{"enabled":false},"latencyAware":false}}],
		"healthCheckConfig":{"serviceName":""}}`, endpoints(f.Addrs()))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	waitFor(t, "both backends served", func() bool {
		tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		return f[0].Hits() > 0 && f[1].Hits() > 0
	})
	f[0].Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "grpc's health check takes the backend out", func() bool {
		before := f[0].Hits()
		for range 20 {
			tc.UnaryCall(ctx, &testpb.SimpleRequest{})
		}
		return f[0].Hits() == before
	})
	before := f[0].Hits()
	for i := range 200 {
		if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("RPC %d: %v", i, err)
		}
	}
	if got := f[0].Hits() - before; got != 0 {
		t.Errorf("backend NOT_SERVING by grpc's health check received %d RPCs", got)
	}
}

// TestPolicy_RetryPolicyRetriesOnAnotherEndpoint: grpc-go's retryPolicy
// still works through the policy, and a retry is a new pick. One of two
// backends fails every RPC with UNAVAILABLE; its breaker trips on the first
// failure (consecutiveFailures 1), so the retry of that RPC is picked after
// the trip and goes to the other backend: no RPC fails, and the failing
// backend sees exactly one.
func TestPolicy_RetryPolicyRetriesOnAnotherEndpoint(t *testing.T) {
	f := startFleet(t, 2)
	f[0].SetFailure(codes.Unavailable)
	tc := dialServiceConfig(t, `{"loadBalancingConfig":[{"weighted_least_request":{"healthProbe":{"enabled":false},
		"breaker":{"consecutiveFailures":1,"failureRatio":0,"openDuration":"1h","maxOpenDuration":"1h"}}}],
		"methodConfig":[{"name":[{"service":"grpc.testing.TestService"}],"retryPolicy":{"maxAttempts":2,
		"initialBackoff":"0.01s","maxBackoff":"0.01s","backoffMultiplier":1,"retryableStatusCodes":["UNAVAILABLE"]}}]}`,
		endpoints(f.Addrs()))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	for i := range 100 {
		if _, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("RPC %d: %v (a retry should have gone to the healthy backend)", i, err)
		}
	}
	if h := f[0].Hits(); h != 1 {
		t.Errorf("failing backend received %d RPCs, want 1 (the first, before its breaker tripped)", h)
	}
}
