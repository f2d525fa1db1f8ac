package healthprobe

import (
	"context"
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

// fakeTimer is one wait that the loop asked timeAfter for; the test decides
// when it fires.
type fakeTimer struct {
	d  time.Duration
	ch chan time.Time
}

func (f fakeTimer) fire() { f.ch <- time.Time{} }

// withFakeClock replaces timeAfter and randFloat for one test and returns the
// waits the loop requests, in order.
func withFakeClock(t *testing.T, r float64) <-chan fakeTimer {
	t.Helper()
	timers := make(chan fakeTimer, 100)
	oldAfter, oldRand := timeAfter, randFloat
	timeAfter = func(d time.Duration) <-chan time.Time {
		ft := fakeTimer{d: d, ch: make(chan time.Time, 1)}
		timers <- ft
		return ft.ch
	}
	randFloat = func() float64 { return r }
	t.Cleanup(func() { timeAfter, randFloat = oldAfter, oldRand })
	return timers
}

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

func nextTimer(t *testing.T, timers <-chan fakeTimer) fakeTimer {
	t.Helper()
	select {
	case ft := <-timers:
		return ft
	case <-time.After(defaultTestTimeout):
		t.Fatalf("the loop did not start a wait within %v", defaultTestTimeout)
		return fakeTimer{}
	}
}

// TestLoop_ThresholdsWithFakeClock drives the probe loop against a real
// health server with an injected clock: every wait is fired by the test, so
// the number of probes behind each verdict is exact. The loop must probe at
// once, wait the jittered interval after each probe, flip to unhealthy on the
// third consecutive SERVICE_UNKNOWN and back on the second SERVING, and give a
// listener that joins later the current verdict without an extra probe.
func TestLoop_ThresholdsWithFakeClock(t *testing.T) {
	timers := withFakeClock(t, 0.25)
	h, cc := startHealthServer(t)

	cfg := DefaultGRPCConfig()
	cfg.Interval, cfg.Timeout, cfg.Jitter = config.Duration(time.Second), config.Duration(500*time.Millisecond), 0.2
	cfg.UnhealthyThreshold, cfg.HealthyThreshold = 3, 2
	wantWait := 900 * time.Millisecond // Interval*(1 + Jitter*(2*0.25-1))

	pr, closeFn := producerBuilderSingleton.Build(cc)
	p := pr.(*producer)
	t.Cleanup(closeFn) // on failure; close is idempotent
	events := make(chan verdictEvent, 10)
	p.register(&listener{cfg: cfg, onChange: recordInto(events)})

	// The first probe is sent at once: a verdict arrives before any wait fires.
	expectEvent(t, events, verdictEvent{true, "SERVING"})
	ft := nextTimer(t, timers)
	assert.Equal(t, wantWait, ft.d)
	assert.EqualValues(t, 1, h.checks.Load())

	// SERVICE_UNKNOWN: a failure subject to the threshold (an explicit
	// NOT_SERVING acts at once; see TestStart_NotServingThenServing).
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	for i := 2; i <= 3; i++ { // probes 2 and 3 fail: no verdict change yet
		ft.fire()
		ft = nextTimer(t, timers) // the loop waits again only after the probe
		assert.Equal(t, wantWait, ft.d)
		assert.EqualValues(t, i, h.checks.Load())
		expectNoEvent(t, events)
	}
	ft.fire() // probe 4: the third consecutive failure
	expectEvent(t, events, verdictEvent{false, "3 consecutive failures: SERVICE_UNKNOWN"})
	ft = nextTimer(t, timers)
	assert.EqualValues(t, 4, h.checks.Load())

	// A second listener joins while the loop waits: it gets the current
	// verdict at once, and no probe is sent for it.
	late := make(chan verdictEvent, 10)
	p.register(&listener{cfg: cfg, onChange: recordInto(late)})
	expectEvent(t, late, verdictEvent{false, "3 consecutive failures: SERVICE_UNKNOWN"})
	assert.EqualValues(t, 4, h.checks.Load())

	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	ft.fire() // probe 5: first success, still unhealthy
	ft = nextTimer(t, timers)
	expectNoEvent(t, events)
	ft.fire() // probe 6: second success
	want := verdictEvent{true, "2 consecutive successes: SERVING"}
	expectEvent(t, events, want)
	expectEvent(t, late, want)
	nextTimer(t, timers)
	assert.EqualValues(t, 6, h.checks.Load())

	closeFn()
	select {
	case <-p.done:
	case <-time.After(defaultTestTimeout):
		t.Fatal("probe loop did not exit after close")
	}
	expectNoEvent(t, events)
}

// TestLoop_ConfigOfNewestListener checks that the newest listener's config
// governs the shared loop and that the older one's comes back when the newest
// leaves.
func TestLoop_ConfigOfNewestListener(t *testing.T) {
	timers := withFakeClock(t, 0.5) // no jitter effect: waits equal Interval
	_, cc := startHealthServer(t)

	a, b := DefaultGRPCConfig(), DefaultGRPCConfig()
	a.Interval, b.Interval = config.Duration(time.Second), config.Duration(2*time.Second)
	pr, closeFn := producerBuilderSingleton.Build(cc)
	p := pr.(*producer)
	defer func() { closeFn(); <-p.done }()
	la := &listener{cfg: a, onChange: func(bool, string) {}}
	lb := &listener{cfg: b, onChange: func(bool, string) {}}

	p.register(la)
	assert.Equal(t, time.Second, nextTimer(t, timers).d)
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
	assert.False(t, p.started)
}
