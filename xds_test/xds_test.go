package xds_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v3resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	// Registers weighted_least_request, which the cluster names.
	_ "github.com/fulcrum-lb/fulcrum"
	xdsexample "github.com/fulcrum-lb/fulcrum/examples/xds"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

const (
	defaultTestTimeout = 20 * time.Second // the whole of one test, on a busy machine
	rpcTimeout         = 5 * time.Second
)

// setup starts n backends and a management server, and dials xds:///svc
// with a bootstrap pointing at the server. Everything stops when the test
// ends, the channel first.
func setup(t *testing.T, n int) (*controlPlane, testutil.Fleet, testgrpc.TestServiceClient) {
	t.Helper()
	fleet, err := testutil.StartFleet(n, testutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	cp := startControlPlane(t)
	return cp, fleet, dial(t, cp)
}

// dial connects to xds:///svc through cp. NewXDSResolverWithConfigForTesting
// gives each test its own xDS client; an application sets
// GRPC_XDS_BOOTSTRAP (a file) or GRPC_XDS_BOOTSTRAP_CONFIG (the JSON) instead
// and dials with no resolver option.
func dial(t *testing.T, cp *controlPlane) testgrpc.TestServiceClient {
	t.Helper()
	r, err := xds.NewXDSResolverWithConfigForTesting(cp.bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+xdsexample.Service,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// endpoints lists the fleet's backends with the given EDS weights.
func endpoints(f testutil.Fleet, weights ...uint32) []xdsexample.Endpoint {
	eps := make([]xdsexample.Endpoint, len(f))
	for i, b := range f {
		eps[i] = xdsexample.Endpoint{Addr: b.Addr, Weight: weights[i]}
	}
	return eps
}

// call sends one UnaryCall and returns the backend that answered.
func call(ctx context.Context, c testgrpc.TestServiceClient, opts ...grpc.CallOption) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, opts...)
	return resp.GetHostname(), err
}

// warmUp sends wait-for-ready RPCs until each of addrs has answered one:
// Fulcrum holds a new connection back until its first probe succeeds, so
// the first RPCs reach whichever backend was ready first.
func warmUp(ctx context.Context, t *testing.T, c testgrpc.TestServiceClient, addrs ...string) {
	t.Helper()
	want := make(map[string]bool)
	for _, a := range addrs {
		want[a] = true
	}
	for len(want) > 0 {
		got, err := call(ctx, c, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("warm-up: %v (still waiting for %v)", err, want)
		}
		delete(want, got)
	}
}

// count sends n RPCs one at a time and counts the answers per backend;
// every RPC must succeed.
func count(ctx context.Context, t *testing.T, c testgrpc.TestServiceClient, n int) map[string]int {
	t.Helper()
	got := make(map[string]int)
	for i := range n {
		addr, err := call(ctx, c)
		if err != nil {
			t.Fatalf("RPC %d of %d: %v", i+1, n, err)
		}
		got[addr]++
	}
	return got
}

// fulcrumConfig is the Fulcrum config the tests put in the TypedStruct:
// latency term off, so that shares at one RPC in flight follow weights
// alone, and panic mode off: on a busy machine a healthy backend's probe can
// time out too, and with one backend ejected or hung that would leave less
// than half usable, so panic mode would rightly pick among all connected
// backends, the sick one included.
func fulcrumConfig(extra map[string]any) map[string]any {
	cfg := map[string]any{"latencyAware": false, "panicThresholdPercent": 0}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// TestXDS_SharesFollowEDSWeights serves three backends with EDS
// load_balancing_weight 1, 2 and 4 and checks that RPCs flow through
// Fulcrum and that each backend's share follows its weight. grpc-go hands
// the weights over as fixed-point fractions (gRFC A113); without reading
// them, or clamping them one by one, the shares would be equal.
func TestXDS_SharesFollowEDSWeights(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cp, fleet, c := setup(t, 3)
	weights := []uint32{1, 2, 4}
	cp.update(t, fulcrumConfig(nil), endpoints(fleet, weights...))
	warmUp(ctx, t, c, fleet.Addrs()...)

	// One RPC at a time: the first, weight-sampled candidate always wins,
	// so each RPC lands on backend i with probability w_i/7, independently.
	// 4 standard deviations of a binomial share (about 1.1 points for 4/7 at
	// n = 2100) make a spurious failure a 1-in-15000 event per backend.
	const n = 2100
	got := count(ctx, t, c, n)
	t.Logf("%d RPCs through xds:///%s, EDS weights 1:2:4:", n, xdsexample.Service)
	for i, b := range fleet {
		p := float64(weights[i]) / 7
		share := float64(got[b.Addr]) / n
		tol := 4 * math.Sqrt(p*(1-p)/n)
		t.Logf("  %-21s weight %d  %4d RPCs  %5.1f%%  (ideal %4.1f%%, tolerance ±%.1f)", b.Addr, weights[i], got[b.Addr], 100*share, 100*p, 100*tol)
		if math.Abs(share-p) > tol {
			t.Errorf("backend %s (weight %d): share %.1f%%, want %.1f%% ± %.1f", b.Addr, weights[i], 100*share, 100*p, 100*tol)
		}
	}
}

// TestXDS_FastFailingBackendEjectedByBreaker makes one of three backends
// fail every RPC with UNAVAILABLE while its connection and health stay fine.
// Fulcrum's breaker (5 consecutive failures) must eject it: afterwards every
// RPC succeeds and none reaches it, within the one-minute open period.
func TestXDS_FastFailingBackendEjectedByBreaker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cp, fleet, c := setup(t, 3)
	cp.update(t, fulcrumConfig(map[string]any{
		"breaker": map[string]any{"consecutiveFailures": 5, "openDuration": "1m"},
	}), endpoints(fleet, 1, 1, 1))
	warmUp(ctx, t, c, fleet.Addrs()...)

	bad := fleet[0]
	bad.SetFailure(codes.Unavailable)
	bad.ResetHits()
	// It gets about a third of the RPCs until its fifth failure in a row.
	for bad.Hits() < 5 {
		_, err := call(ctx, c)
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("RPC failed with %v, want success or the bad backend's UNAVAILABLE", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("bad backend got %d RPCs before the deadline, want 5", bad.Hits())
		}
	}
	if h := bad.Hits(); h != 5 {
		t.Fatalf("bad backend got %d RPCs, want exactly 5 (the breaker trips on the fifth failure)", h)
	}
	got := count(ctx, t, c, 300)
	if got[bad.Addr] != 0 || bad.Hits() != 5 {
		t.Errorf("after the trip the bad backend got %d more RPCs, want 0 (all: %v)", bad.Hits()-5, got)
	}
}

// TestXDS_HungBackendProbedOut hangs one of three backends: its RPCs and its
// health checks block without an answer, while its connection stays up.
// Fulcrum's probes (timeout 200ms, two failures) must take it out of
// rotation; DEADLINE_EXCEEDED is not a breaker failure by default, so only
// the probe can do it.
func TestXDS_HungBackendProbedOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cp, fleet, c := setup(t, 3)
	cp.update(t, fulcrumConfig(map[string]any{
		"healthProbe": map[string]any{"interval": "200ms", "timeout": "200ms", "unhealthyThreshold": 2},
	}), endpoints(fleet, 1, 1, 1))
	warmUp(ctx, t, c, fleet.Addrs()...)

	hung := fleet[0]
	checks := hung.Checks()
	hung.SetHung(true)
	// Until the probe's verdict, an RPC that lands on it times out. While it
	// is in rotation, each RPC avoids it with probability 2/3, so 30 in a
	// row avoid it by chance with probability 5e-6.
	for streak := 0; streak < 30 || hung.Checks() < checks+2; {
		hits := hung.Hits()
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := c.UnaryCall(rctx, &testpb.SimpleRequest{})
		rcancel()
		streak++
		if err != nil || hung.Hits() != hits {
			streak = 0
		}
		if ctx.Err() != nil {
			t.Fatalf("hung backend still in rotation at the deadline (%d probes since the hang)", hung.Checks()-checks)
		}
	}
	hits := hung.Hits()
	got := make(map[string]int)
	var failed []error
	for range 300 {
		addr, err := call(ctx, c)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		got[addr]++
	}
	if n := hung.Hits() - hits; n != 0 || len(failed) > 0 {
		t.Errorf("after the probes failed, the hung backend got %d of 300 RPCs and %d failed (%v), want 0 and 0 (answers: %v)", n, len(failed), failed, got)
	}
}

// TestXDS_EDSUpdateWithoutFailedRPC keeps 4 callers busy while the control
// plane first removes a backend from the ClusterLoadAssignment and then
// adds a new one. No RPC may fail; the removed backend must stop getting
// RPCs and the added one must start.
func TestXDS_EDSUpdateWithoutFailedRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cp, fleet, c := setup(t, 4)
	for _, b := range fleet {
		b.SetDelay(time.Millisecond) // RPCs are in flight when endpoints change
	}
	a, b1, b2, d := fleet[0], fleet[1], fleet[2], fleet[3]
	cfg := fulcrumConfig(nil)
	cp.update(t, cfg, endpoints(testutil.Fleet{a, b1, b2}, 1, 1, 1))
	warmUp(ctx, t, c, a.Addr, b1.Addr, b2.Addr)

	var (
		served atomic.Int64
		mu     sync.Mutex
		failed []error
		wg     sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	for range 4 {
		wg.Go(func() {
			for loadCtx.Err() == nil {
				if _, err := call(ctx, c); err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		})
	}
	defer func() { stopLoad(); wg.Wait() }()

	// waitFor polls cond while the load runs.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: not by the deadline", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// quiet reports whether backend x got no RPC while 100 were served.
	quiet := func(x *testutil.Backend) bool {
		h, s := x.Hits(), served.Load()
		waitFor("100 RPCs served", func() bool { return served.Load() >= s+100 })
		return x.Hits() == h
	}

	v := cp.update(t, cfg, endpoints(testutil.Fleet{b1, b2}, 1, 1))
	if err := cp.waitACK(ctx, v3resource.EndpointType, v); err != nil {
		t.Fatal(err)
	}
	waitFor("removed backend out of rotation", func() bool { return quiet(a) })

	v = cp.update(t, cfg, endpoints(testutil.Fleet{b1, b2, d}, 1, 1, 1))
	if err := cp.waitACK(ctx, v3resource.EndpointType, v); err != nil {
		t.Fatal(err)
	}
	waitFor("added backend in rotation", func() bool { return d.Hits() > 0 })
	quietAfterAdd := quiet(a)

	stopLoad()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(failed) > 0 {
		t.Errorf("%d of %d RPCs failed during the EDS updates; first: %v", len(failed), int(served.Load())+len(failed), failed[0])
	}
	if !quietAfterAdd {
		t.Errorf("removed backend %s got RPCs again after the second update", a.Addr)
	}
	t.Logf("%d RPCs served across both EDS updates, none failed", served.Load())
}

// badConfig is a Fulcrum config that ParseConfig rejects, and the error it
// must give.
var (
	badConfig = map[string]any{"choiceCount": 1}
	badText   = "weighted_least_request: choiceCount: 1, must be >= 2"
)

// TestXDS_BadConfigNACKed sends a cluster whose TypedStruct carries a config
// Fulcrum rejects, after a good one. grpc-go's xDS client validates the
// converted config with Fulcrum's ParseConfig (A52), so it must NACK the
// cluster with Fulcrum's error text in error_detail, and keep serving RPCs
// with the last good cluster.
func TestXDS_BadConfigNACKed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cp, fleet, c := setup(t, 2)
	cp.update(t, fulcrumConfig(nil), endpoints(fleet, 1, 1))
	warmUp(ctx, t, c, fleet.Addrs()...)

	v := cp.update(t, badConfig, endpoints(fleet, 1, 1))
	n, err := cp.waitNACK(ctx, v3resource.ClusterType)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NACK of cluster version %s: %s", v, n.message)
	if !strings.Contains(n.message, badText) {
		t.Errorf("NACK error_detail = %q, want it to contain %q", n.message, badText)
	}
	count(ctx, t, c, 50) // the last good cluster keeps serving
}

// TestXDS_BadFirstConfigFailsRPCsWithFulcrumError gives a new channel a bad
// config in its very first cluster: with no good cluster to fall back on,
// RPCs must fail with UNAVAILABLE and an error that shows Fulcrum's text.
func TestXDS_BadFirstConfigFailsRPCsWithFulcrumError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cp, fleet, c := setup(t, 1)
	cp.update(t, badConfig, endpoints(fleet, 1))
	// The first RPC starts the channel's resolution, hence the NACK.
	_, err := call(ctx, c)
	t.Logf("RPC error: %v", err)
	if _, err := cp.waitNACK(ctx, v3resource.ClusterType); err != nil {
		t.Fatal(err)
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), badText) {
		t.Errorf("RPC error = %v, want UNAVAILABLE containing %q", err, badText)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error("RPC waited for its deadline, want a prompt failure")
	}
}
