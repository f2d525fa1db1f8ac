package interop_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"

	_ "github.com/fulcrum-lb/fulcrum"
)

const (
	// caseEnv names the case a child process runs; unset in the parent.
	caseEnv = "FULCRUM_INTEROP_CASE"
	// childTimeout bounds one child, start-up included.
	childTimeout = 60 * time.Second
	// caseTimeout bounds the work inside a child once its backends run.
	caseTimeout = 30 * time.Second
	// warmUpTimeout bounds the wait for every backend to serve an RPC.
	warmUpTimeout = 15 * time.Second
	numBackends   = 3
	// serviceConfig selects the policy with its defaults, health probing
	// included.
	serviceConfig = `{"loadBalancingConfig":[{"weighted_least_request":{}}]}`
	// childPassLine is what a child that ran its case (not skipped, not
	// filtered out) prints under -test.v.
	childPassLine = "--- PASS: TestInteropCase"
)

// childSlots lets at most two children run at once (the CI machine has two
// cores and -race multiplies the cost of each).
var childSlots = make(chan struct{}, 2)

// runCase runs the named case in a child process of this test binary and
// returns the child's combined output. The error is non-nil unless the
// child ran the case and exited 0 within timeout. The interop helpers end
// the process through grpclog's Fatal on failure, which is why every case
// gets a process of its own.
func runCase(ctx context.Context, name string, timeout time.Duration) ([]byte, error) {
	select {
	case childSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("interop case %s: waiting to start: %w", name, ctx.Err())
	}
	defer func() { <-childSlots }()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The child's own -test.timeout fires first, so a hung case dies with
	// a goroutine dump; the context kill is the backstop.
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run=^TestInteropCase$", "-test.v", "-test.count=1",
		"-test.timeout="+(timeout*3/4).String())
	// A -race binary sleeps 1s at exit by default (atexit_sleep_ms); a
	// second per child would double the suite's run time.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), caseEnv+"="+name, "GORACE="+gorace)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// Do not wait forever for pipes a killed child left to a grandchild.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.Bytes(), fmt.Errorf("interop case %s: killed after %v: %v", name, timeout, err)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("interop case %s: %w", name, err)
	}
	// Exit 0 without the pass line means the case never ran (skipped, or
	// -test.run matched nothing): that is not a pass.
	if !bytes.Contains(out.Bytes(), []byte(childPassLine)) {
		return out.Bytes(), fmt.Errorf("interop case %s: child exited 0 without %q", name, childPassLine)
	}
	return out.Bytes(), nil
}

// TestInteropCase is the child side of runCase: it runs the case named by
// $FULCRUM_INTEROP_CASE against three backends through the policy. In the
// parent it is skipped.
//
// Setup: three grpc.Servers on 127.0.0.1 serving the case's TestService
// (interop.NewTestServer by default) and a SERVING health service, a
// client on fulcrum://static/<the three> with weighted_least_request, and a
// warm-up that waits until every backend has served an EmptyCall, so the
// case runs with all three endpoints in the picker. Afterwards the case's
// own RPCs are counted per backend and checked.
func TestInteropCase(t *testing.T) {
	name := os.Getenv(caseEnv)
	if name == "" {
		t.Skip("runs in a subprocess started by runCase")
	}
	c, ok := lookupCase(name)
	if !ok {
		t.Fatalf("unknown interop case %q", name)
	}
	newServer := c.server
	if newServer == nil {
		newServer = func() testgrpc.TestServiceServer { return interop.NewTestServer() }
	}
	backends := startBackends(t, numBackends, newServer)
	cc := dial(t, backends)

	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	warmUp(ctx, t, cc, backends)
	for _, b := range backends {
		b.hits.Store(0)
	}

	c.run(ctx, cc)

	hits := make([]int64, len(backends))
	var total int64
	for i, b := range backends {
		hits[i] = b.hits.Load()
		total += hits[i]
	}
	if c.check != nil {
		c.check(t, hits)
	} else if c.mayEndInClient {
		// The RPC may end on the client (deadline, cancel) before its
		// headers leave; nothing to count.
	} else if total == 0 {
		t.Fatalf("case %s sent no RPC that reached a backend; RPCs per backend: %v", name, hits)
	}
	t.Logf("case %s passed; application RPCs per backend: %v", name, hits)
}

// backend is one grpc.Server on 127.0.0.1 with a count of the application
// RPCs (health probes excluded) it received.
type backend struct {
	addr string
	hits atomic.Int64
}

// TagRPC is called for every RPC the server reads headers for, before the
// method lookup, so RPCs to unknown services and methods count too.
func (b *backend) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if !strings.HasPrefix(info.FullMethodName, "/"+healthpb.Health_ServiceDesc.ServiceName+"/") {
		b.hits.Add(1)
	}
	return ctx
}

func (*backend) HandleRPC(context.Context, stats.RPCStats) {}

func (*backend) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (*backend) HandleConn(context.Context, stats.ConnStats) {}

// startBackends starts n servers; they stop when the test ends.
func startBackends(t *testing.T, n int, newServer func() testgrpc.TestServiceServer) []*backend {
	t.Helper()
	bs := make([]*backend, n)
	for i := range bs {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		b := &backend{addr: lis.Addr().String()}
		srv := grpc.NewServer(grpc.StatsHandler(b))
		testgrpc.RegisterTestServiceServer(srv, newServer())
		// interop.NewTestServer has no health service; without one the
		// policy's probe would only pass via unimplementedIsHealthy.
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		bs[i] = b
	}
	return bs
}

// dial connects to the backends through the fulcrum resolver and policy.
func dial(t *testing.T, backends []*backend) *grpc.ClientConn {
	t.Helper()
	addrs := make([]string, len(backends))
	for i, b := range backends {
		addrs[i] = b.addr
	}
	cc, err := grpc.NewClient("fulcrum://static/"+strings.Join(addrs, ","),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// warmUp sends EmptyCalls until every backend has served one. It proves the
// channel spreads RPCs (pick_first, grpc's default, would not) and makes
// each case start with all endpoints connected and healthy.
func warmUp(ctx context.Context, t *testing.T, cc *grpc.ClientConn, backends []*backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, warmUpTimeout)
	defer cancel()
	tc := testgrpc.NewTestServiceClient(cc)
	const pause = 5 * time.Millisecond
	for calls := 1; ; calls++ {
		if _, err := tc.EmptyCall(ctx, &testpb.Empty{}); err != nil {
			t.Fatalf("warm-up EmptyCall %d: %v", calls, err)
		}
		missing := 0
		for _, b := range backends {
			if b.hits.Load() == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after %d warm-up EmptyCalls over %v, %d of %d backends served none", calls, warmUpTimeout, missing, len(backends))
		case <-time.After(pause):
		}
	}
}
