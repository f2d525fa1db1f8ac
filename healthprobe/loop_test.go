package healthprobe

import (
	"context"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/config"
)

const defaultTestTimeout = 5 * time.Second

// countingHealth is the real health service, counting Check calls.
type countingHealth struct {
	*health.Server
	checks atomic.Int64
}

func (h *countingHealth) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.checks.Add(1)
	return h.Server.Check(ctx, in)
}

// startHealthServer serves the health service on 127.0.0.1 and returns a
// ClientConn to it, which stands in for the SubConn's ClientConnInterface.
func startHealthServer(t *testing.T) (*countingHealth, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	h := &countingHealth{Server: health.NewServer()}
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return h, cc
}

type verdictEvent struct {
	healthy bool
	reason  string
}

func recordInto(ch chan verdictEvent) func(bool, string) {
	return func(healthy bool, reason string) { ch <- verdictEvent{healthy, reason} }
}

func expectEvent(t *testing.T, ch <-chan verdictEvent, want verdictEvent) {
	t.Helper()
	select {
	case got := <-ch:
		assert.Equal(t, want, got)
	case <-time.After(defaultTestTimeout):
		t.Fatalf("no verdict within %v, want %+v", defaultTestTimeout, want)
	}
}

func expectNoEvent(t *testing.T, ch <-chan verdictEvent) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("unexpected verdict %+v", got)
	default:
	}
}

// TestLoop_ThresholdsWithFakeClock drives the probe loop against a real
// health server with an injected clock: every wait is fired by the test, so
// the number of probes behind each verdict is exact. The loop must probe at
// once, wait the jittered interval after each probe, flip to unhealthy on the
// third consecutive SERVICE_UNKNOWN and back on the second SERVING, and give a
// listener that joins later the current verdict without an extra probe.
func TestLoop_ThresholdsWithFakeClock(t *testing.T) {
	clk := UseFakeClock(t, 0.25)
	h, cc := startHealthServer(t)

	cfg := DefaultGRPCConfig()
	cfg.Interval, cfg.Timeout, cfg.Jitter = config.Duration(time.Second), config.Duration(500*time.Millisecond), 0.2
	cfg.UnhealthyThreshold, cfg.HealthyThreshold = 3, 2
	wantWait := 900 * time.Millisecond // Interval*(1 + Jitter*(2*0.25-1))

	pr, closeFn := clk.builder.Build(cc)
	p := pr.(*producer)
	t.Cleanup(closeFn) // on failure; close is idempotent
	events := make(chan verdictEvent, 10)
	p.register(&listener{cfg: cfg, onChange: recordInto(events)})

	// The first probe is sent at once: a verdict arrives before any wait fires.
	expectEvent(t, events, verdictEvent{true, "SERVING"})
	ft := clk.Next(t)
	assert.Equal(t, wantWait, ft.D)
	assert.EqualValues(t, 1, h.checks.Load())

	// SERVICE_UNKNOWN: a failure subject to the threshold (an explicit
	// NOT_SERVING acts at once; see TestStart_NotServingThenServing).
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	for i := 2; i <= 3; i++ { // probes 2 and 3 fail: no verdict change yet
		ft.Fire()
		ft = clk.Next(t) // the loop waits again only after the probe
		assert.Equal(t, wantWait, ft.D)
		assert.EqualValues(t, i, h.checks.Load())
		expectNoEvent(t, events)
	}
	ft.Fire() // probe 4: the third consecutive failure
	expectEvent(t, events, verdictEvent{false, "3 consecutive failures: SERVICE_UNKNOWN"})
	ft = clk.Next(t)
	assert.EqualValues(t, 4, h.checks.Load())

	// A second listener joins while the loop waits: it gets the current
	// verdict at once, and no probe is sent for it.
	late := make(chan verdictEvent, 10)
	p.register(&listener{cfg: cfg, onChange: recordInto(late)})
	expectEvent(t, late, verdictEvent{false, "3 consecutive failures: SERVICE_UNKNOWN"})
	assert.EqualValues(t, 4, h.checks.Load())

	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ft.Fire() // probe 5: first success, still unhealthy
	ft = clk.Next(t)
	expectNoEvent(t, events)
	ft.Fire() // probe 6: second success
	want := verdictEvent{true, "2 consecutive successes: SERVING"}
	expectEvent(t, events, want)
	expectEvent(t, late, want)
	clk.Next(t)
	assert.EqualValues(t, 6, h.checks.Load())

	closeFn()
	select {
	case <-p.done():
	case <-time.After(defaultTestTimeout):
		t.Fatal("probe loop did not exit after close")
	}
	expectNoEvent(t, events)
}

// TestLoop_ConfigOfNewestListener checks that the newest listener's config
// governs the shared loop and that the older one's comes back when the newest
// leaves.
func TestLoop_ConfigOfNewestListener(t *testing.T) {
	clk := UseFakeClock(t, 0.5) // no jitter effect: waits equal Interval
	_, cc := startHealthServer(t)

	a, b := DefaultGRPCConfig(), DefaultGRPCConfig()
	a.Interval, b.Interval = config.Duration(time.Second), config.Duration(2*time.Second)
	pr, closeFn := clk.builder.Build(cc)
	p := pr.(*producer)
	defer closeAndWait(t, closeFn, p)
	la := &listener{cfg: a, onChange: func(bool, string) {}}
	lb := &listener{cfg: b, onChange: func(bool, string) {}}

	p.register(la)
	assert.Equal(t, time.Second, clk.Next(t).D)
	p.register(lb)
	assert.Equal(t, b, p.config())
	p.unregister(lb)
	assert.Equal(t, a, p.config())
}

// TestProducer_CloseBeforeStart checks that a producer closed before any
// listener registered neither starts a loop nor leaves a waiter hanging.
func TestProducer_CloseBeforeStart(t *testing.T) {
	_, cc := startHealthServer(t)
	pr, closeFn := producerBuilderSingleton.Build(cc)
	p := pr.(*producer)
	closeFn()
	p.register(&listener{cfg: DefaultGRPCConfig(), onChange: func(bool, string) { t.Error("onChange called on a closed producer") }})
	select {
	case <-p.closedDone():
	default:
		t.Fatal("closedDone of a producer closed before start must be closed")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	assert.Nil(t, p.loop, "a loop started")
}

// TestLoop_WaitsAreJittered checks that every wait the loop asks for is
// drawn from randFloat within Interval*(1±Jitter): the ends of the range
// and its middle, in the order randFloat returns them.
func TestLoop_WaitsAreJittered(t *testing.T) {
	clk := UseFakeClock(t, 0)
	draws := []float64{0, 0.5, math.Nextafter(1, 0), 0.25}
	var next atomic.Int32
	clk.SetRand(func() float64 { return draws[int(next.Add(1)-1)%len(draws)] })
	_, cc := startHealthServer(t)

	cfg := DefaultGRPCConfig()
	cfg.Interval, cfg.Timeout, cfg.Jitter = config.Duration(time.Second), config.Duration(500*time.Millisecond), 0.2
	pr, closeFn := clk.builder.Build(cc)
	p := pr.(*producer)
	defer closeAndWait(t, closeFn, p)
	p.register(&listener{cfg: cfg, onChange: func(bool, string) {}})

	ft := clk.Next(t)
	assert.Equal(t, 800*time.Millisecond, ft.D, "r=0: Interval*(1-Jitter)")
	ft = clk.Step(t, ft)
	assert.Equal(t, time.Second, ft.D, "r=0.5: Interval")
	ft = clk.Step(t, ft)
	// r just below 1: at most Interval*(1+Jitter), rounding aside.
	assert.LessOrEqual(t, ft.D, 1200*time.Millisecond)
	assert.Greater(t, ft.D, 1200*time.Millisecond-time.Microsecond)
	ft = clk.Step(t, ft)
	assert.Equal(t, 900*time.Millisecond, ft.D, "r=0.25")
	assert.EqualValues(t, 4, next.Load(), "one draw per wait")
}

// closeAndWait closes the producer and waits, boundedly, for its loop to
// exit.
func closeAndWait(t *testing.T, closeFn func(), p *producer) {
	t.Helper()
	closeFn()
	select {
	case <-p.done():
	case <-time.After(defaultTestTimeout):
		t.Errorf("probe loop did not exit within %v of close", defaultTestTimeout)
	}
}
