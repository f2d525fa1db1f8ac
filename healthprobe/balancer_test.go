package healthprobe_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// defaultTestTimeout bounds every wait for an event; generous for a loaded
// two-core machine. No test waits it out when the code is right.
const defaultTestTimeout = 10 * time.Second

// A test-only balancer: one SubConn per address; on READY it either starts a
// prober (auto mode) or hands the SubConn to the test (manual mode). Its
// picker round-robins over READY SubConns and counts picks.

const testLBName = "healthprobe_test_lb"

func init() { balancer.Register(testBuilder{}) }

// verdict is one onChange call.
type verdict struct {
	healthy bool
	reason  string
	calls   int // Check calls the server had logged when onChange ran
}

// hooks is one test's view into the balancer it gets.
type hooks struct {
	clk        *healthprobe.FakeClock // probe loops run on it when set
	cfg        healthprobe.GRPCConfig
	startTwice bool                      // auto mode: call Start twice per SubConn
	onReady    func(sc balancer.SubConn) // manual mode when set
	server     *testServer

	picks atomic.Int64

	mu       sync.Mutex
	verdicts []verdict
}

func (h *hooks) record(healthy bool, reason string) {
	v := verdict{healthy: healthy, reason: reason}
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

// all returns a copy of the verdicts recorded so far.
func (h *hooks) all() []verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]verdict(nil), h.verdicts...)
}

func (h *hooks) numVerdicts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.verdicts)
}

// start starts a prober on sc, on h's clock if it has one.
func (h *hooks) start(sc balancer.SubConn) (stop func()) {
	if h.clk != nil {
		return h.clk.Start(sc, h.cfg, h.record)
	}
	return healthprobe.Start(sc, h.cfg, h.record)
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
		e.stops = append(e.stops, b.h.start(e.sc))
		if b.h.startTwice {
			e.stops = append(e.stops, b.h.start(e.sc))
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

// manualSubConn dials with the test balancer in manual mode and returns the
// READY SubConn, and a channel that receives it again each time it turns
// READY after that.
func manualSubConn(t *testing.T, ts *testServer, opts ...grpc.DialOption) (balancer.SubConn, *hooks, <-chan balancer.SubConn) {
	t.Helper()
	ready := make(chan balancer.SubConn, 10)
	h := &hooks{server: ts, onReady: func(sc balancer.SubConn) { ready <- sc }}
	dial(t, h, ts.addr, opts...)
	select {
	case sc := <-ready:
		return sc, h, ready
	case <-time.After(defaultTestTimeout):
		t.Fatal("SubConn did not become READY")
		return nil, nil, nil
	}
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
		time.Sleep(time.Millisecond)
	}
}

// goroutines returns the stacks of every goroutine in this process.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// probeGoroutines counts running probe loops in this process.
func probeGoroutines() int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, "probe.(*Loop).run(") {
			n++
		}
	}
	return n
}

// testConfig is a valid config for the fake clock, under which the interval
// and the timeout only label the waits and the timeouts the loop asks for.
func testConfig() healthprobe.GRPCConfig {
	cfg := healthprobe.DefaultGRPCConfig()
	cfg.Interval = config.Duration(time.Second)
	cfg.Timeout = config.Duration(50 * time.Millisecond)
	cfg.Jitter = 0.2
	cfg.UnhealthyThreshold = 3 // the counts below were written for 3
	return cfg
}
