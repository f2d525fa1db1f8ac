package healthprobe_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// The tests in this file run the prober through grpc-go against a real
// health server on 127.0.0.1, with the fake clock of export_test.go: the
// loop probes only when the test fires the wait it asked for, and
// clk.Next/clk.Step return once the loop has delivered the verdict of the
// probes so far and parked again. So every count below is exact and no test
// depends on how fast the machine is.

// TestStart_FirstProbeIsImmediate checks that the first probe is sent, and
// its verdict delivered, before the loop waits at all.
func TestStart_FirstProbeIsImmediate(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	h := &hooks{clk: clk, cfg: testConfig(), server: ts}
	dial(t, h, ts.addr)

	w := clk.Next(t) // the first wait is asked for after the first probe
	assert.Equal(t, []verdict{{true, "SERVING", 1}}, h.all(), "verdicts when the loop first waits")
	assert.Equal(t, time.Second, w.D, "first wait: Interval (r=0.5 means no jitter)")
}

// TestStart_NotServingThenServing flips a real health server to NOT_SERVING
// and back. An explicit NOT_SERVING marks the endpoint unhealthy at the
// first answer (it is the server's own statement, not a symptom); exactly
// HealthyThreshold (2) SERVING answers bring it back.
func TestStart_NotServingThenServing(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	h := &hooks{clk: clk, cfg: testConfig(), server: ts}
	dial(t, h, ts.addr)
	w := clk.Next(t)
	require.Equal(t, []verdict{{true, "SERVING", 1}}, h.all())

	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	w = clk.Step(t, w) // probe 2: the first NOT_SERVING
	assert.Equal(t, []verdict{{true, "SERVING", 1}, {false, "1 consecutive failures: NOT_SERVING", 2}}, h.all())

	ts.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	w = clk.Step(t, w) // probe 3: one success is not enough
	assert.Equal(t, 2, h.numVerdicts(), "verdict changed after 1 of 2 successes")
	clk.Step(t, w) // probe 4: the second success
	assert.Equal(t, verdict{true, "2 consecutive successes: SERVING", 4}, h.all()[2])
	assert.Equal(t, []string{"SERVING", "NOT_SERVING", "SERVING", "SERVING"}, ts.answers())
}

// TestStart_FirstFailureHoldsBack checks the warm-up gate: a server that is
// NOT_SERVING from the start is unhealthy after one probe, and needs exactly
// HealthyThreshold successes to become healthy.
func TestStart_FirstFailureHoldsBack(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	h := &hooks{clk: clk, cfg: testConfig(), server: ts}
	dial(t, h, ts.addr)
	w := clk.Next(t)
	assert.Equal(t, []verdict{{false, "NOT_SERVING", 1}}, h.all())

	ts.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	w = clk.Step(t, w)
	assert.Equal(t, 1, h.numVerdicts(), "healthy after 1 of 2 successes")
	clk.Step(t, w)
	assert.Equal(t, []verdict{{false, "NOT_SERVING", 1}, {true, "2 consecutive successes: SERVING", 3}}, h.all())
}

// TestStart_HungServerFailsByTimeout makes Check block until the caller
// gives up, the case a Watch stream never notices: each probe must end when
// its own timeout expires, which the test fires once the hung Check has
// reached the server, and the connection turn unhealthy at exactly the
// UnhealthyThreshold-th (3rd) timeout, not before.
func TestStart_HungServerFailsByTimeout(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	cfg := testConfig()
	h := &hooks{clk: clk, cfg: cfg, server: ts}
	dial(t, h, ts.addr)
	w := clk.Next(t)
	require.Equal(t, 1, h.numVerdicts())

	ts.setMode(hang)
	for i := 1; i <= cfg.UnhealthyThreshold; i++ {
		w.Fire()
		d := clk.NextDeadline(t)
		assert.Equal(t, time.Duration(cfg.Timeout), d.D, "probe timeout")
		waitFor(t, "the hung Check to reach the server", func() bool { return ts.numCalls() == 1+i })
		d.Fire()
		w = clk.Next(t) // the probe has ended and its outcome is delivered
		if i < cfg.UnhealthyThreshold {
			assert.Equal(t, 1, h.numVerdicts(), "verdict changed after %d timeouts", i)
		}
	}
	assert.Equal(t, []verdict{{true, "SERVING", 1}, {false, "3 consecutive failures: timeout after 50ms", 4}}, h.all())
	assert.Equal(t, []string{"SERVING", "HANG", "HANG", "HANG"}, ts.answers())
}

// TestStart_ServerDeadlineExceededCountsAsTimeout has the server answer
// DEADLINE_EXCEEDED at once while the probe's own timeout, which the fake
// clock expires only when the test fires it, has not expired: the server's
// copy of the deadline (grpc-timeout) fired first. That is the probe's
// timeout too, reported as such, and subject to UnhealthyThreshold like any
// ambiguous failure (unlike NOT_SERVING).
func TestStart_ServerDeadlineExceededCountsAsTimeout(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	h := &hooks{clk: clk, cfg: testConfig(), server: ts}
	dial(t, h, ts.addr)
	w := clk.Next(t)

	ts.setMode(deadlineExceeded)
	w = clk.Step(t, w)
	w = clk.Step(t, w)
	assert.Equal(t, 1, h.numVerdicts(), "verdict changed before the third failure")
	clk.Step(t, w)
	assert.Equal(t, []verdict{{true, "SERVING", 1}, {false, "3 consecutive failures: timeout after 50ms", 4}}, h.all())
	assert.Equal(t, []string{"SERVING", "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"}, ts.answers())
}

// TestStart_NoHealthService serves no health service. With
// UnimplementedIsHealthy (the default) the connection is healthy and the
// prober logs exactly one warning over five probes; without it the
// connection is unhealthy.
func TestStart_NoHealthService(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		clk := healthprobe.UseFakeClock(t, 0.5)
		const warning = "does not implement grpc.health.v1.Health/Check"
		before := logs.count("WARNING", warning)
		ts, _ := startServer(t, false)
		h := &hooks{clk: clk, cfg: testConfig(), server: ts}
		dial(t, h, ts.addr)
		w := clk.Next(t)
		assert.Equal(t, []verdict{{true, "UNIMPLEMENTED: server has no grpc.health.v1.Health service, treated as healthy", 1}}, h.all())
		for range 4 {
			w = clk.Step(t, w)
		}
		assert.Equal(t, 5, ts.numCalls())
		assert.Equal(t, before+1, logs.count("WARNING", warning), "one warning per prober, not one per probe")
		assert.Equal(t, 1, h.numVerdicts(), "verdict must stay healthy")
	})
	t.Run("unhealthy", func(t *testing.T) {
		clk := healthprobe.UseFakeClock(t, 0.5)
		ts, _ := startServer(t, false)
		cfg := testConfig()
		cfg.UnimplementedIsHealthy = false
		h := &hooks{clk: clk, cfg: cfg, server: ts}
		dial(t, h, ts.addr)
		clk.Next(t)
		assert.Equal(t, []verdict{{false, "UNIMPLEMENTED: server has no grpc.health.v1.Health service", 1}}, h.all())
	})
}

// TestStart_UnknownService asks about a service the server does not know:
// Check answers NOT_FOUND, a failure; once the service is SERVING, two
// successes make it healthy.
func TestStart_UnknownService(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	cfg := testConfig()
	cfg.Service = "no.such.Service"
	h := &hooks{clk: clk, cfg: cfg, server: ts}
	dial(t, h, ts.addr)
	w := clk.Next(t)
	assert.Equal(t, []verdict{{false, "NotFound: unknown service", 1}}, h.all())

	ts.SetServingStatus("no.such.Service", healthpb.HealthCheckResponse_SERVING)
	clk.Step(t, clk.Step(t, w))
	assert.Equal(t, verdict{true, "2 consecutive successes: SERVING", 3}, h.all()[1])
}

// TestProbes_BypassPickerAndInterceptors checks that probe RPCs go straight
// to the SubConn: the channel's picker and interceptors never see them, so
// they cannot count as application in-flight RPCs or breaker outcomes. One
// application RPC shows that the counters do count.
func TestProbes_BypassPickerAndInterceptors(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	var intercepted int
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		intercepted++ // only the test goroutine sends application RPCs
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	h := &hooks{clk: clk, cfg: testConfig(), server: ts}
	cc := dial(t, h, ts.addr, grpc.WithUnaryInterceptor(count))
	w := clk.Next(t)
	for range 9 {
		w = clk.Step(t, w)
	}
	require.Equal(t, 10, ts.numCalls())
	assert.Zero(t, h.picks.Load(), "probes went through the picker")
	assert.Zero(t, intercepted, "probes went through the interceptor")

	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.EqualValues(t, 1, h.picks.Load())
	assert.Equal(t, 1, intercepted)
}

// TestStart_InvalidConfigUsesDefaults checks that Start does not run with a
// config Validate rejects: it logs one error and probes with the defaults,
// which shows in the wait the loop asks for (DefaultConfig's 5s Interval).
func TestStart_InvalidConfigUsesDefaults(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, h, _ := manualSubConn(t, ts)
	before := logs.count("ERROR", "invalid config, using defaults")
	stop := clk.Start(sc, healthprobe.GRPCConfig{}, h.record)
	defer stop()
	w := clk.Next(t)
	assert.Equal(t, time.Duration(healthprobe.DefaultConfig().Interval), w.D)
	assert.Equal(t, []verdict{{true, "SERVING", 1}}, h.all())
	assert.Equal(t, before+1, logs.count("ERROR", "invalid config, using defaults"))
}
