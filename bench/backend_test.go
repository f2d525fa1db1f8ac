package bench

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

const defaultTestTimeout = 5 * time.Second

func startTestBackend(t *testing.T, o backendOptions) (*backend, *grpc.ClientConn) {
	t.Helper()
	b, err := newBackend(0, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	cc, err := grpc.NewClient("passthrough:///"+b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return b, cc
}

// A hung backend must hang its health service too: that is what makes
// it invisible to a registry and to grpc's own health watch.
func TestBackend_HungBlocksRPCsAndHealthChecks(t *testing.T) {
	b, cc := startTestBackend(t, backendOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check before hang = %v, %v; want SERVING", r, err)
	}
	b.hung.Store(true)
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	if _, err := hc.Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("Check while hung: %v, want DEADLINE_EXCEEDED", err)
	}
	short2, cancel3 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel3()
	if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(short2, &testpb.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("UnaryCall while hung: %v, want DEADLINE_EXCEEDED", err)
	}
	if got := b.hits.Load(); got != 1 {
		t.Errorf("hits = %d, want 1 (the hung RPC reached the server)", got)
	}
}

func TestBackend_NotServingAndFailure(t *testing.T) {
	b, cc := startTestBackend(t, backendOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	b.setNotServing(true)
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check = %v, %v; want NOT_SERVING", r, err)
	}
	cli := testgrpc.NewTestServiceClient(cc)
	if _, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Errorf("UnaryCall while NOT_SERVING: %v, want success (it drains, it does not fail)", err)
	}
	b.failCode.Store(uint32(codes.Unavailable))
	if _, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("UnaryCall while failing: %v, want UNAVAILABLE", err)
	}
	if got := b.hitsNotOK.Load(); got != 2 {
		t.Errorf("hitsNotOK = %d, want 2", got)
	}
}

func TestBackend_RestartKeepsPort(t *testing.T) {
	b, cc := startTestBackend(t, backendOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cli := testgrpc.NewTestServiceClient(cc)
	if _, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("UnaryCall: %v", err)
	}
	b.kill()
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if _, err := cli.UnaryCall(short, &testpb.SimpleRequest{}); err == nil {
		t.Errorf("UnaryCall to a killed backend succeeded")
	}
	if err := b.restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	// The client reconnects with backoff; wait for it under ctx.
	if _, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Errorf("UnaryCall after restart: %v", err)
	}
}

// With capacity 1, two concurrent RPCs of >= 100ms each cannot both be
// done in less than 200ms.
func TestBackend_CapacityQueues(t *testing.T) {
	_, cc := startTestBackend(t, backendOptions{base: 100 * time.Millisecond, capacity: 1})
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	cli := testgrpc.NewTestServiceClient(cc)
	if _, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil { // connect
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("two RPCs on a 1-slot backend took %v, want >= 200ms", el)
	}
}

func TestBackend_StallAndColdSchedule(t *testing.T) {
	b := &backend{}
	t0 := time.Unix(1000, 0)
	b.setStall(t0, 4*time.Second, time.Second)
	b.slowX.Store(0)
	b.setSlow(1)
	for _, tc := range []struct {
		at   time.Duration
		want time.Duration
	}{
		{-time.Second, 0},
		{0, time.Second},
		{250 * time.Millisecond, 750 * time.Millisecond},
		{time.Second, 0},
		{3 * time.Second, 0},
		{4*time.Second + 900*time.Millisecond, 100 * time.Millisecond},
	} {
		if got := b.stallLeft(t0.Add(tc.at)); got != tc.want {
			t.Errorf("stallLeft(t0%+v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	b.setCold(t0, 5, 2*time.Second)
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 5},
		{time.Second, 3},
		{2 * time.Second, 1},
		{-time.Second, 1},
	} {
		if got := b.latencyFactor(t0.Add(tc.at)); got != tc.want {
			t.Errorf("latencyFactor(t0%+v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}
