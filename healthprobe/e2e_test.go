package healthprobe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/stats"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

const (
	defaultTestTimeout = 10 * time.Second // generous: 2 shared cores
	// margin is added to every computed timing bound for scheduling noise.
	margin = 2 * time.Second
)

// ---------------------------------------------------------------------------
// A test server: the real health service whose Check can be made to hang, and
// a log of every Check it saw.

type checkCall struct {
	at     time.Time
	answer string // the status sent, "HANG" for a call that got no answer
}

type testServer struct {
	*health.Server
	addr string

	hang    atomic.Bool   // Check blocks until the caller gives up
	release chan struct{} // closed at test end to unblock hung handlers

	mu    sync.Mutex
	calls []checkCall
}

func (s *testServer) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if s.hang.Load() {
		s.log("HANG")
		select {
		case <-ctx.Done():
		case <-s.release:
		}
		return nil, ctx.Err()
	}
	resp, err := s.Server.Check(ctx, in)
	answer := resp.GetStatus().String()
	if err != nil {
		answer = err.Error()
	}
	s.log(answer)
	return resp, err
}

func (s *testServer) log(answer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, checkCall{time.Now(), answer})
}

// snapshot returns a copy of the Check log.
func (s *testServer) snapshot() []checkCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]checkCall(nil), s.calls...)
}

func (s *testServer) numCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// startServer serves on 127.0.0.1:0; withHealth=false serves no health
// service at all (Check is UNIMPLEMENTED). It returns a stop function that
// tests may call early; cleanup calls it too.
func startServer(t *testing.T, withHealth bool) (*testServer, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := &testServer{Server: health.NewServer(), addr: lis.Addr().String(), release: make(chan struct{})}
	var s *grpc.Server
	if withHealth {
		s = grpc.NewServer()
		healthpb.RegisterHealthServer(s, ts)
	} else {
		// No service to log calls in: a stats handler sees them.
		s = grpc.NewServer(grpc.StatsHandler(unimplementedLogger{ts}))
	}
	served := make(chan struct{})
	go func() { s.Serve(lis); close(served) }()
	stop := sync.OnceFunc(func() {
		close(ts.release)
		s.Stop()
		<-served
	})
	t.Cleanup(stop)
	return ts, stop
}

// unimplementedLogger logs the Check calls of a server without the health
// service, which answers them UNIMPLEMENTED.
type unimplementedLogger struct{ ts *testServer }

func (u unimplementedLogger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (u unimplementedLogger) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok && in.FullMethod == healthpb.Health_Check_FullMethodName {
		u.ts.log("UNIMPLEMENTED")
	}
}

func (u unimplementedLogger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (u unimplementedLogger) HandleConn(context.Context, stats.ConnStats) {}

// ---------------------------------------------------------------------------
// A test-only balancer: one SubConn per address; on READY it either starts a
// prober (auto mode) or hands the SubConn to the test (manual mode). Its
// picker round-robins over READY SubConns and counts picks.

const testLBName = "healthprobe_test_lb"

func init() { balancer.Register(testBuilder{}) }

// verdict is one onChange call.
type verdict struct {
	healthy bool
	reason  string
	at      time.Time
	calls   int // Check calls the server had logged when onChange ran
}

// hooks is one test's view into the balancer it gets.
type hooks struct {
	cfg        healthprobe.GRPCConfig
	startTwice bool                      // auto mode: call Start twice per SubConn
	onReady    func(sc balancer.SubConn) // manual mode when set
	server     *testServer

	picks atomic.Int64

	mu       sync.Mutex
	verdicts []verdict
}

func (h *hooks) record(healthy bool, reason string) {
	v := verdict{healthy: healthy, reason: reason, at: time.Now()}
	if h.server != nil {
		v.calls = h.server.numCalls()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verdicts = append(h.verdicts, v)
}

// waitVerdicts polls until at least n verdicts were recorded.
func (h *hooks) waitVerdicts(t *testing.T, n int) []verdict {
	t.Helper()
	var got []verdict
	waitFor(t, fmt.Sprintf("%d verdicts", n), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		got = append([]verdict(nil), h.verdicts...)
		return len(got) >= n
	})
	return got
}

func (h *hooks) numVerdicts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.verdicts)
}

var hooksByID sync.Map // test name -> *hooks

type lbConfig struct {
	serviceconfig.LoadBalancingConfig
	ID string `json:"id"`
}

type testBuilder struct{}

func (testBuilder) Name() string { return testLBName }

func (testBuilder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	var c lbConfig
	err := json.Unmarshal(js, &c)
	return &c, err
}

func (testBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &testLB{cc: cc, subConns: map[string]*subConn{}}
}

type subConn struct {
	sc    balancer.SubConn
	ready bool
	stops []func()
}

type testLB struct {
	cc balancer.ClientConn

	mu       sync.Mutex
	h        *hooks
	subConns map[string]*subConn
}

func (b *testLB) UpdateClientConnState(s balancer.ClientConnState) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := hooksByID.Load(s.BalancerConfig.(*lbConfig).ID)
	if !ok {
		return fmt.Errorf("%s: no hooks for %q", testLBName, s.BalancerConfig.(*lbConfig).ID)
	}
	b.h = h.(*hooks)
	for _, a := range s.ResolverState.Addresses {
		if _, ok := b.subConns[a.Addr]; ok {
			continue
		}
		e := &subConn{}
		sc, err := b.cc.NewSubConn([]resolver.Address{a}, balancer.NewSubConnOptions{
			StateListener: func(st balancer.SubConnState) { b.updateSubConnState(e, st) },
		})
		if err != nil {
			return err
		}
		e.sc = sc
		b.subConns[a.Addr] = e
		sc.Connect()
	}
	b.updatePickerLocked()
	return nil
}

func (b *testLB) updateSubConnState(e *subConn, st balancer.SubConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e.ready = st.ConnectivityState == connectivity.Ready
	if !e.ready {
		// Safe under b.mu: onChange (h.record) takes no lock of ours.
		for _, stop := range e.stops {
			stop()
		}
		e.stops = nil
	}
	switch {
	case e.ready && b.h.onReady != nil:
		b.h.onReady(e.sc)
	case e.ready:
		e.stops = append(e.stops, healthprobe.Start(e.sc, b.h.cfg, b.h.record))
		if b.h.startTwice {
			e.stops = append(e.stops, healthprobe.Start(e.sc, b.h.cfg, b.h.record))
		}
	case st.ConnectivityState == connectivity.Idle:
		e.sc.Connect()
	}
	b.updatePickerLocked()
}

func (b *testLB) updatePickerLocked() {
	var ready []balancer.SubConn
	for _, e := range b.subConns {
		if e.ready {
			ready = append(ready, e.sc)
		}
	}
	if len(ready) == 0 {
		b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Connecting, Picker: &testPicker{h: b.h}})
		return
	}
	b.cc.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: &testPicker{h: b.h, ready: ready}})
}

func (b *testLB) ResolverError(error) {}

func (b *testLB) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *testLB) ExitIdle() {}

func (b *testLB) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.subConns {
		for _, stop := range e.stops {
			stop()
		}
		e.stops = nil
		e.sc.Shutdown()
	}
}

type testPicker struct {
	h     *hooks
	ready []balancer.SubConn
	next  atomic.Uint32
}

func (p *testPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	if len(p.ready) == 0 {
		return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
	}
	p.h.picks.Add(1)
	return balancer.PickResult{SubConn: p.ready[int(p.next.Add(1))%len(p.ready)]}, nil
}

// ---------------------------------------------------------------------------
// Helpers.

// dial connects a ClientConn that uses the test balancer with h, and returns
// it connecting.
func dial(t *testing.T, h *hooks, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	id := t.Name()
	hooksByID.Store(id, h)
	t.Cleanup(func() { hooksByID.Delete(id) })
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{"id":%q}}]}`, testLBName, id)
	opts = append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc))
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	cc.Connect()
	return cc
}

// waitFor polls cond every few milliseconds until it holds or
// defaultTestTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", defaultTestTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// probeGoroutines counts running probe loops in this process.
func probeGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), "healthprobe.(*producer).run(")
}

func fastConfig() healthprobe.GRPCConfig {
	cfg := healthprobe.DefaultGRPCConfig()
	cfg.Interval = config.Duration(50 * time.Millisecond)
	cfg.Timeout = config.Duration(50 * time.Millisecond)
	cfg.Jitter = 0.2
	cfg.UnhealthyThreshold, cfg.HealthyThreshold = 3, 2
	return cfg
}

// answersSince counts the Check calls in calls[from:to] that got answer.
func answersSince(calls []checkCall, from, to int, answer string) int {
	n := 0
	for _, c := range calls[from:to] {
		if c.answer == answer {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// Tests.

// TestStart_FirstProbeIsImmediate uses a one-hour interval: a verdict can only
// arrive within the test timeout if the first probe does not wait for it.
func TestStart_FirstProbeIsImmediate(t *testing.T) {
	ts, _ := startServer(t, true)
	cfg := healthprobe.DefaultGRPCConfig()
	cfg.Interval = config.Duration(time.Hour)
	h := &hooks{cfg: cfg, server: ts}
	dial(t, h, ts.addr)

	v := h.waitVerdicts(t, 1)[0]
	assert.True(t, v.healthy)
	assert.Equal(t, "SERVING", v.reason)
	assert.Equal(t, 1, v.calls)
}

// TestStart_NotServingThenServing flips a real health server between SERVING
// and NOT_SERVING. An explicit NOT_SERVING marks the endpoint unhealthy at
// the first answer (it is the server's own statement, not a symptom);
// HealthyThreshold SERVING answers bring it back, within threshold × (max
// wait + timeout) plus a margin.
func TestStart_NotServingThenServing(t *testing.T) {
	ts, _ := startServer(t, true)
	cfg := fastConfig()
	h := &hooks{cfg: cfg, server: ts}
	dial(t, h, ts.addr)

	first := h.waitVerdicts(t, 1)[0]
	require.True(t, first.healthy, "first verdict: %+v", first)

	perProbe := time.Duration(float64(cfg.Interval)*(1+cfg.Jitter)) + time.Duration(cfg.Timeout)
	minWait := time.Duration(float64(cfg.Interval) * (1 - cfg.Jitter))
	from := ts.numCalls()
	flip := time.Now()
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	down := h.waitVerdicts(t, 2)[1]
	assert.False(t, down.healthy)
	assert.Equal(t, "1 consecutive failures: NOT_SERVING", down.reason)
	assert.Equal(t, 1, answersSince(ts.snapshot(), from, down.calls, "NOT_SERVING"))
	assert.Less(t, down.at.Sub(flip), perProbe+margin)

	from = ts.numCalls()
	flip = time.Now()
	ts.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	up := h.waitVerdicts(t, 3)[2]
	assert.True(t, up.healthy)
	assert.Equal(t, "2 consecutive successes: SERVING", up.reason)
	assert.Equal(t, cfg.HealthyThreshold, answersSince(ts.snapshot(), from, up.calls, "SERVING"))
	assert.Less(t, up.at.Sub(flip), time.Duration(cfg.HealthyThreshold)*perProbe+margin)
	assert.GreaterOrEqual(t, up.at.Sub(flip), time.Duration(cfg.HealthyThreshold-1)*minWait)
}

// TestStart_FirstFailureHoldsBack checks the warm-up gate: a server that is
// NOT_SERVING from the start is unhealthy after one probe, and needs
// HealthyThreshold successes to become healthy.
func TestStart_FirstFailureHoldsBack(t *testing.T) {
	ts, _ := startServer(t, true)
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	h := &hooks{cfg: fastConfig(), server: ts}
	dial(t, h, ts.addr)

	v := h.waitVerdicts(t, 1)[0]
	assert.False(t, v.healthy)
	assert.Equal(t, "NOT_SERVING", v.reason)
	assert.Equal(t, 1, v.calls)

	ts.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	v = h.waitVerdicts(t, 2)[1]
	assert.True(t, v.healthy)
	assert.Equal(t, "2 consecutive successes: SERVING", v.reason)
}

// TestStart_HungServerFailsByTimeout makes Check block forever, the case a
// Watch stream never notices: the probe must time out and the connection turn
// unhealthy after UnhealthyThreshold timeouts.
func TestStart_HungServerFailsByTimeout(t *testing.T) {
	ts, _ := startServer(t, true)
	cfg := fastConfig()
	h := &hooks{cfg: cfg, server: ts}
	dial(t, h, ts.addr)
	require.True(t, h.waitVerdicts(t, 1)[0].healthy)

	from := ts.numCalls()
	flip := time.Now()
	ts.hang.Store(true)
	down := h.waitVerdicts(t, 2)[1]
	assert.False(t, down.healthy)
	assert.Equal(t, "3 consecutive failures: timeout after 50ms", down.reason)
	// A probe that timed out before its request reached the handler is not
	// in the server's log, so the log may show fewer hung calls, never more.
	hung := answersSince(ts.snapshot(), from, down.calls, "HANG")
	assert.GreaterOrEqual(t, hung, 1)
	assert.LessOrEqual(t, hung, cfg.UnhealthyThreshold)
	// Each failing probe waited out its timeout; all but the first started
	// after the flip, each after a wait.
	perProbe := time.Duration(float64(cfg.Interval)*(1+cfg.Jitter)) + time.Duration(cfg.Timeout)
	minPerProbe := time.Duration(float64(cfg.Interval)*(1-cfg.Jitter)) + time.Duration(cfg.Timeout)
	assert.Less(t, down.at.Sub(flip), time.Duration(cfg.UnhealthyThreshold)*perProbe+margin)
	assert.GreaterOrEqual(t, down.at.Sub(flip), time.Duration(cfg.UnhealthyThreshold-1)*minPerProbe)
}

// TestStart_NoHealthService serves no health service. With
// UnimplementedIsHealthy (the default) the connection is healthy and the
// prober logs exactly one warning however many probes it sends; without it
// the connection is unhealthy.
func TestStart_NoHealthService(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		const warning = "does not implement grpc.health.v1.Health/Check"
		before := logs.count("WARNING", warning)
		ts, _ := startServer(t, false)
		h := &hooks{cfg: fastConfig(), server: ts}
		dial(t, h, ts.addr)
		v := h.waitVerdicts(t, 1)[0]
		assert.True(t, v.healthy)
		assert.Equal(t, "UNIMPLEMENTED: server has no grpc.health.v1.Health service, treated as healthy", v.reason)

		waitFor(t, "5 probes", func() bool { return ts.numCalls() >= 5 })
		assert.Equal(t, before+1, logs.count("WARNING", warning), "one warning per prober, not one per probe")
		assert.Equal(t, 1, h.numVerdicts(), "verdict must stay healthy")
	})
	t.Run("unhealthy", func(t *testing.T) {
		ts, _ := startServer(t, false)
		cfg := fastConfig()
		cfg.UnimplementedIsHealthy = false
		h := &hooks{cfg: cfg}
		dial(t, h, ts.addr)
		v := h.waitVerdicts(t, 1)[0]
		assert.False(t, v.healthy)
		assert.Equal(t, "UNIMPLEMENTED: server has no grpc.health.v1.Health service", v.reason)
	})
}

// TestStart_UnknownService asks about a service the server does not know:
// Check answers NOT_FOUND, a failure.
func TestStart_UnknownService(t *testing.T) {
	ts, _ := startServer(t, true)
	cfg := fastConfig()
	cfg.Service = "no.such.Service"
	h := &hooks{cfg: cfg, server: ts}
	dial(t, h, ts.addr)
	v := h.waitVerdicts(t, 1)[0]
	assert.False(t, v.healthy)
	assert.Equal(t, "NotFound: unknown service", v.reason)

	ts.SetServingStatus("no.such.Service", healthpb.HealthCheckResponse_SERVING)
	v = h.waitVerdicts(t, 2)[1]
	assert.True(t, v.healthy)
}

// manualSubConn dials with the test balancer in manual mode and returns the
// READY SubConn.
func manualSubConn(t *testing.T, ts *testServer, opts ...grpc.DialOption) (balancer.SubConn, *hooks) {
	t.Helper()
	ready := make(chan balancer.SubConn, 1)
	h := &hooks{server: ts, onReady: func(sc balancer.SubConn) {
		select {
		case ready <- sc:
		default:
		}
	}}
	dial(t, h, ts.addr, opts...)
	select {
	case sc := <-ready:
		return sc, h
	case <-time.After(defaultTestTimeout):
		t.Fatal("SubConn did not become READY")
		return nil, nil
	}
}

// TestStop_EndsLoop checks stop's contract: when it returns the probe
// goroutine is gone and onChange is not called again, and no more Check calls
// reach the server. stop is idempotent.
func TestStop_EndsLoop(t *testing.T) {
	ts, _ := startServer(t, true)
	sc, h := manualSubConn(t, ts)
	cfg := fastConfig()

	stop := healthprobe.Start(sc, cfg, h.record)
	h.waitVerdicts(t, 1)
	// Flip so that onChange would be called again if the loop survived.
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	stop()
	assert.Equal(t, 0, probeGoroutines(), "probe goroutine still running after stop returned")
	stop() // idempotent

	// A probe in flight when stop ran may still reach the server; after that
	// nothing may. There is no event to wait for, so watch for 10 intervals.
	time.Sleep(2 * time.Duration(cfg.Interval))
	calls := ts.numCalls()
	verdicts := h.numVerdicts()
	time.Sleep(10 * time.Duration(cfg.Interval))
	assert.Equal(t, calls, ts.numCalls(), "Check calls after stop")
	assert.Equal(t, verdicts, h.numVerdicts(), "onChange after stop")
	assert.Equal(t, 1, verdicts)
}

// TestStop_WaitsForRunningOnChange blocks onChange and checks that stop does
// not return until it has returned.
func TestStop_WaitsForRunningOnChange(t *testing.T) {
	ts, _ := startServer(t, true)
	sc, _ := manualSubConn(t, ts)

	entered, unblock := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	stop := healthprobe.Start(sc, fastConfig(), func(bool, string) {
		if calls.Add(1) == 1 {
			close(entered)
			<-unblock
		}
	})
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("stop returned while onChange was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(unblock)
	select {
	case <-stopped:
	case <-time.After(defaultTestTimeout):
		t.Fatal("stop did not return after onChange returned")
	}
	assert.Equal(t, 0, probeGoroutines())
	assert.EqualValues(t, 1, calls.Load())
}

// TestSubConnShutdown_EndsLoop checks that grpc-go's own cleanup ends the
// loop without stop: on SubConn.Shutdown, and when the server goes away and
// the SubConn leaves READY.
func TestSubConnShutdown_EndsLoop(t *testing.T) {
	t.Run("Shutdown", func(t *testing.T) {
		ts, _ := startServer(t, true)
		sc, h := manualSubConn(t, ts)
		stop := healthprobe.Start(sc, fastConfig(), h.record)
		h.waitVerdicts(t, 1)
		require.Equal(t, 1, probeGoroutines())

		sc.Shutdown()
		waitFor(t, "the probe goroutine to exit", func() bool { return probeGoroutines() == 0 })
		calls := ts.numCalls()
		time.Sleep(10 * time.Duration(fastConfig().Interval)) // no event to wait for: watch
		assert.Equal(t, calls, ts.numCalls(), "Check calls after Shutdown")
		stop() // still safe, and returns at once
	})
	t.Run("server gone", func(t *testing.T) {
		ts, stopServer := startServer(t, true)
		sc, h := manualSubConn(t, ts)
		stop := healthprobe.Start(sc, fastConfig(), h.record)
		defer stop()
		h.waitVerdicts(t, 1)
		require.Equal(t, 1, probeGoroutines())

		stopServer()
		waitFor(t, "the probe goroutine to exit", func() bool { return probeGoroutines() == 0 })
	})
}

// TestStart_TwiceSharesOneLoop starts two probers on the same SubConn: both
// get verdicts, but there is one probe goroutine and the server sees the rate
// of one loop. With waits >= Interval between probes, one loop sends at most
// span/Interval + 1 Checks in a span (+1 for latency noise); two loops would
// send about twice that.
func TestStart_TwiceSharesOneLoop(t *testing.T) {
	ts, _ := startServer(t, true)
	cfg := fastConfig()
	cfg.Interval, cfg.Jitter = config.Duration(100*time.Millisecond), 0
	h := &hooks{cfg: cfg, server: ts, startTwice: true}
	dial(t, h, ts.addr)

	vs := h.waitVerdicts(t, 2) // one first verdict per listener
	assert.True(t, vs[0].healthy && vs[1].healthy)
	assert.Equal(t, 1, probeGoroutines())

	const n = 12
	waitFor(t, fmt.Sprintf("%d Check calls", n), func() bool { return ts.numCalls() >= n })
	calls := ts.snapshot()
	span := calls[len(calls)-1].at.Sub(calls[0].at)
	maxOneLoop := int(span/time.Duration(cfg.Interval)) + 2
	assert.LessOrEqual(t, len(calls), maxOneLoop, "%d Check calls in %v: more than one probe loop", len(calls), span)
	assert.Equal(t, 2, h.numVerdicts())
}

// TestStart_TwiceManual checks the sharing rules with explicit Starts: the
// second listener gets the shared verdict, stopping the first keeps the loop
// for the second, stopping the second ends it.
func TestStart_TwiceManual(t *testing.T) {
	ts, _ := startServer(t, true)
	sc, _ := manualSubConn(t, ts)
	cfg := fastConfig()

	a, b := &hooks{server: ts}, &hooks{server: ts}
	stopA := healthprobe.Start(sc, cfg, a.record)
	a.waitVerdicts(t, 1)
	stopB := healthprobe.Start(sc, cfg, b.record)
	assert.True(t, b.waitVerdicts(t, 1)[0].healthy)
	assert.Equal(t, 1, probeGoroutines())

	stopA()
	assert.Equal(t, 1, probeGoroutines(), "the loop must live on for B")
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	assert.False(t, b.waitVerdicts(t, 2)[1].healthy)
	assert.Equal(t, 1, a.numVerdicts(), "A was stopped")

	stopB()
	assert.Equal(t, 0, probeGoroutines())
}

// TestProbes_BypassPickerAndInterceptors checks that probe RPCs go straight
// to the SubConn: the channel's picker and interceptors never see them, so
// they cannot count as application in-flight RPCs or breaker outcomes. One
// application RPC shows that the counters do count.
func TestProbes_BypassPickerAndInterceptors(t *testing.T) {
	ts, _ := startServer(t, true)
	var intercepted atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		intercepted.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	h := &hooks{cfg: fastConfig(), server: ts}
	cc := dial(t, h, ts.addr, grpc.WithUnaryInterceptor(count))
	h.waitVerdicts(t, 1)
	waitFor(t, "10 probes", func() bool { return ts.numCalls() >= 10 })
	assert.Zero(t, h.picks.Load(), "probes went through the picker")
	assert.Zero(t, intercepted.Load(), "probes went through the interceptor")

	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.EqualValues(t, 1, h.picks.Load())
	assert.EqualValues(t, 1, intercepted.Load())
}

// TestStart_InvalidConfigUsesDefaults checks that Start does not run with a
// config Validate rejects: it logs an error and probes with the defaults
// (whose 5s interval means only the first probe happens during the test).
func TestStart_InvalidConfigUsesDefaults(t *testing.T) {
	ts, _ := startServer(t, true)
	sc, h := manualSubConn(t, ts)
	before := logs.count("ERROR", "invalid config, using defaults")
	stop := healthprobe.Start(sc, healthprobe.GRPCConfig{}, h.record)
	defer stop()
	assert.True(t, h.waitVerdicts(t, 1)[0].healthy)
	assert.Equal(t, before+1, logs.count("ERROR", "invalid config, using defaults"))
}
