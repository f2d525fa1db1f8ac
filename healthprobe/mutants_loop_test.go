package healthprobe

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/config"
)

// hangingHealth answers no Check until the caller gives up; checks counts
// the Checks received.
type hangingHealth struct {
	healthpb.UnimplementedHealthServer
	checks atomic.Int64
}

func (h *hangingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.checks.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func startHangingServer(t *testing.T) (*hangingHealth, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	h := &hangingHealth{}
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return h, cc
}

// TestProducer_CloseIsIdempotent: grpc-go may call a producer's close more
// than once (state change, then Shutdown); a second call is a no-op, also
// for a producer whose loop never started.
func TestProducer_CloseIsIdempotent(t *testing.T) {
	_, cc := startHealthServer(t)
	pr, closeFn := producerBuilderSingleton.Build(cc)
	closeFn()
	closeFn()
	select {
	case <-pr.(*producer).closedDone():
	default:
		t.Fatal("closedDone of a closed producer is not closed")
	}
}

// TestLoop_ProbeCutShortByCloseEndsTheLoop: a close while a probe is in
// flight ends the loop there: the cut-short probe is neither observed nor
// turned into a verdict, and no further wait is started.
func TestLoop_ProbeCutShortByCloseEndsTheLoop(t *testing.T) {
	clk := UseFakeClock(t, 0.5)
	h, cc := startHangingServer(t)
	pr, closeFn := clk.builder.Build(cc)
	p := pr.(*producer)
	var calls atomic.Int32
	p.register(&listener{cfg: DefaultGRPCConfig(), onChange: func(bool, string) { calls.Add(1) }, onProbe: func(Probe) { calls.Add(1) }})
	clk.NextDeadline(t) // the probe is under way
	waitCond(t, "the server to receive the probe", func() bool { return h.checks.Load() == 1 })
	closeAndWait(t, closeFn, p)
	assert.Zero(t, calls.Load(), "callbacks for a probe cut short by close")
	assert.Zero(t, clk.Pending(), "the loop asked for a wait after close")
}

// TestLoop_CloseDuringDeliveryStopsIt: once a callback closes the producer
// (grpc-go does when the SubConn leaves READY), no further listener is
// called for that probe, neither observer nor onChange.
func TestLoop_CloseDuringDeliveryStopsIt(t *testing.T) {
	for _, observed := range []bool{true, false} {
		clk := UseFakeClock(t, 0.5)
		_, cc := startHealthServer(t)
		pr, closeFn := clk.builder.Build(cc)
		p := pr.(*producer)
		var second atomic.Int32
		first := &listener{cfg: DefaultGRPCConfig(), onChange: func(bool, string) {}}
		other := &listener{cfg: DefaultGRPCConfig(), onChange: func(bool, string) { second.Add(1) }}
		if observed {
			first.onProbe = func(Probe) { closeFn() }
			other.onProbe = func(Probe) { second.Add(1) }
		} else {
			first.onChange = func(bool, string) { closeFn() }
		}
		p.register(first)
		p.register(other)
		select {
		case <-p.done():
		case <-time.After(defaultTestTimeout):
			t.Fatal("the loop did not end after a callback closed the producer")
		}
		assert.Zero(t, second.Load(), "observed %v: the second listener was called after close", observed)
	}
}

// TestLoop_ListenerJoiningDuringAProbe: a listener with another interval
// that joins while a probe is in flight governs the wait after that probe
// (the probe itself finishes under the config it started with).
func TestLoop_ListenerJoiningDuringAProbe(t *testing.T) {
	clk := UseFakeClock(t, 0.5)
	h, cc := startHangingServer(t)
	a, b := DefaultGRPCConfig(), DefaultGRPCConfig()
	a.Interval, b.Interval = config.Duration(time.Second), config.Duration(2*time.Second)
	pr, closeFn := clk.builder.Build(cc)
	p := pr.(*producer)
	defer closeAndWait(t, closeFn, p)
	var mu sync.Mutex
	var verdicts []bool
	record := func(healthy bool, _ string) { mu.Lock(); verdicts = append(verdicts, healthy); mu.Unlock() }
	p.register(&listener{cfg: a, onChange: record})
	d := clk.NextDeadline(t)
	waitCond(t, "the server to receive the probe", func() bool { return h.checks.Load() == 1 })
	p.register(&listener{cfg: b, onChange: record})
	d.Fire() // the probe times out: a failure, with the config it started with
	w := clk.Next(t)
	assert.Equal(t, 2*time.Second, w.D, "the wait after B joined")
	w.Fire()
	clk.NextDeadline(t)
	waitCond(t, "the second probe", func() bool { return h.checks.Load() == 2 })
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []bool{false, false}, verdicts, "both listeners get the first verdict once")
}

// waitCond polls cond until it holds or defaultTestTimeout passes.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
