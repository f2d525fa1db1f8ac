package balancer

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	_ "google.golang.org/grpc/balancer/leastrequest" // registers least_request_experimental
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/connectivity"
	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

// pickBenchPolicy is one policy configuration under benchmark.
type pickBenchPolicy struct {
	label   string // the policy= part of the benchmark name
	name    string // registered balancer name
	config  string // JSON for ParseConfig; "" when the builder takes none
	weights bool   // give endpoints varied weights
}

var pickBenchPolicies = []pickBenchPolicy{
	{label: roundrobin.Name, name: roundrobin.Name},
	{label: "least_request_experimental", name: "least_request_experimental", config: `{"choiceCount":2}`},
	{label: Name, name: Name, config: `{"healthProbe":{"enabled":false}}`}, // defaults: latency term on
	{label: Name + "_weights", name: Name, config: `{"healthProbe":{"enabled":false}}`, weights: true},
	{label: Name + "_nolatency", name: Name, config: `{"healthProbe":{"enabled":false},"latencyAware":false}`},
}

// BenchmarkPick measures one Pick plus its Done on a READY picker, for
// grpc-go's round_robin and least_request_experimental beside
// weighted_least_request. Every picker is produced the same way: the
// registered builder is driven by a fake ClientConn through a resolver
// update and CONNECTING -> READY (and a READY health report) on every
// SubConn, and the last READY picker it publishes is measured. Done runs
// right after Pick, so in-flight counts stay near zero in serial mode and
// near GOMAXPROCS in parallel mode.
func BenchmarkPick(b *testing.B) {
	for _, pol := range pickBenchPolicies {
		for _, n := range []int{4, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("policy=%s/endpoints=%d", pol.label, n), func(b *testing.B) {
				p := cachedReadyPicker(b, pol, n)
				b.Run("serial", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						pickAndDone(b, p)
					}
				})
				b.Run("parallel", func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							pickAndDone(b, p)
						}
					})
				})
			})
		}
	}
}

// cachedReadyPicker returns the READY picker of a balancer built once per
// policy and size for the whole process: -count repeats reuse it, because
// building grpc-go's policies over 10 000 endpoints costs them O(N²) (see
// BenchmarkStartup) and the pick cost does not depend on how often the
// picker was built. The balancers stay open until the process exits.
func cachedReadyPicker(b *testing.B, pol pickBenchPolicy, n int) grpcbalancer.Picker {
	p, _ := cachedReadyBalancer(b, pol, n)
	return p
}

func pickAndDone(b *testing.B, p grpcbalancer.Picker) {
	res, err := p.Pick(grpcbalancer.PickInfo{})
	if err != nil {
		b.Fatalf("Pick() = %v", err) // unreachable after buildReadyPicker's check
	}
	if res.Done != nil {
		res.Done(okDone)
	}
}

// okDone is how grpc-go ends a successful RPC: bytes went both ways. (An
// empty DoneInfo means the RPC never reached the server, which Fulcrum
// does not time or count, so it would skip the latency and breaker work
// of a real RPC.)
var okDone = grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true}

// buildReadyPicker builds pol over n endpoints, drives every SubConn READY
// and returns the last READY picker published and the balancer (the caller
// closes it). It fails b unless that picker is the current state, picks
// without error and spreads picks over more than half of the endpoints, so
// the benchmark cannot silently time an error or queueing path.
func buildReadyPicker(b *testing.B, pol pickBenchPolicy, n int) (grpcbalancer.Picker, grpcbalancer.Balancer) {
	b.Helper()
	bal, cc, cfg := newBenchBalancer(b, pol)
	p := connectAll(b, pol, bal, cc, cfg, benchEndpoints(pol, n))
	checkSpread(b, pol, p, n)
	return p, bal
}

// newBenchBalancer builds pol's balancer on a fresh benchClientConn and
// parses its config.
func newBenchBalancer(b *testing.B, pol pickBenchPolicy) (grpcbalancer.Balancer, *benchClientConn, serviceconfig.LoadBalancingConfig) {
	b.Helper()
	bb := grpcbalancer.Get(pol.name)
	if bb == nil {
		b.Fatalf("balancer %q is not registered", pol.name)
	}
	var cfg serviceconfig.LoadBalancingConfig
	if pol.config != "" {
		parser, ok := bb.(grpcbalancer.ConfigParser)
		if !ok {
			b.Fatalf("balancer %q takes no config", pol.name)
		}
		c, err := parser.ParseConfig(json.RawMessage(pol.config))
		if err != nil {
			b.Fatalf("%s.ParseConfig(%s) = %v", pol.name, pol.config, err)
		}
		cfg = c
	}
	cc := &benchClientConn{published: make(chan struct{}, 1)}
	target := resolver.Target{URL: url.URL{Scheme: "bench", Path: "/pick"}}
	return bb.Build(cc, grpcbalancer.BuildOptions{Target: target}), cc, cfg
}

// benchEndpoints returns n distinct endpoints (weights 1..8 if pol.weights).
func benchEndpoints(pol pickBenchPolicy, n int) []resolver.Endpoint {
	eps := make([]resolver.Endpoint, n)
	for i := range eps {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: fmt.Sprintf("10.%d.%d.%d:443", i>>16, (i>>8)&255, i&255)}}}
		if pol.weights {
			eps[i] = attrs.SetWeight(eps[i], uint32(1+i%8))
		}
	}
	return eps
}

// connectAll hands eps to bal in one resolver update, drives every SubConn
// READY as grpc's ClientConn would, and waits for a READY picker over all
// of them.
func connectAll(b *testing.B, pol pickBenchPolicy, bal grpcbalancer.Balancer, cc *benchClientConn, cfg serviceconfig.LoadBalancingConfig, eps []resolver.Endpoint) grpcbalancer.Picker {
	b.Helper()
	if err := bal.UpdateClientConnState(grpcbalancer.ClientConnState{
		ResolverState:  resolver.State{Endpoints: eps},
		BalancerConfig: cfg,
	}); err != nil {
		b.Fatalf("%s.UpdateClientConnState() = %v", pol.name, err)
	}

	// Drive SubConns as grpc's ClientConn would: CONNECTING, READY, then
	// (pick_first registers a health listener on READY when its parent
	// enabled it, as all three policies do) a READY health report.
	// Connect() only marks a SubConn, so this loop also covers SubConns
	// created while earlier ones became READY.
	for i := 0; ; i++ {
		sc := cc.subConn(i)
		if sc == nil {
			break
		}
		if !sc.connectCalled() {
			continue // pick_first connects every endpoint's only SubConn
		}
		sc.setState(connectivity.Connecting)
		sc.setState(connectivity.Ready)
		sc.reportHealth(connectivity.Ready)
	}
	if got := cc.numSubConns(); got != len(eps) {
		b.Fatalf("%s created %d SubConns for %d endpoints", pol.name, got, len(eps))
	}

	// weighted_least_request publishes from its own goroutine (events are
	// coalesced): wait, under a deadline, for its picker over all of them.
	return waitReadyPicker(b, cc, pol, len(eps))
}

// checkSpread fails b unless p picks without error and reaches more than
// half of the n endpoints in 8n picks.
func checkSpread(b *testing.B, pol pickBenchPolicy, p grpcbalancer.Picker, n int) {
	b.Helper()
	seen := make(map[grpcbalancer.SubConn]bool)
	for range max(64, 8*n) {
		res, err := p.Pick(grpcbalancer.PickInfo{})
		if err != nil {
			b.Fatalf("%s: Pick() = %v, want a SubConn", pol.name, err)
		}
		if res.SubConn == nil {
			b.Fatalf("%s: Pick() returned no SubConn", pol.name)
		}
		seen[res.SubConn] = true
		if res.Done != nil {
			res.Done(grpcbalancer.DoneInfo{})
		}
	}
	if len(seen) <= 1 || 2*len(seen) <= n {
		b.Fatalf("%s: %d picks reached %d of %d endpoints, want more than half", pol.name, max(64, 8*n), len(seen), n)
	}
}

// benchClientConn is the ClientConn the benchmarked balancers are built
// with. It hands out benchSubConns and records published pickers.
// Embeds balancer.ClientConn so that a call the benchmark does not expect
// panics on the nil interface instead of passing silently.
type benchClientConn struct {
	grpcbalancer.ClientConn

	published chan struct{} // buffered(1): signalled by every UpdateState
	updates   atomic.Int64  // UpdateState calls

	mu        sync.Mutex
	subConns  []*benchSubConn
	last      grpcbalancer.State
	lastReady grpcbalancer.Picker
}

func (cc *benchClientConn) NewSubConn(addrs []resolver.Address, opts grpcbalancer.NewSubConnOptions) (grpcbalancer.SubConn, error) {
	sc := &benchSubConn{addrs: addrs, stateListener: opts.StateListener}
	cc.mu.Lock()
	cc.subConns = append(cc.subConns, sc)
	cc.mu.Unlock()
	return sc, nil
}

// UpdateState may run on the wlr balancer's rebuild goroutine as well as
// the benchmark's, hence the mutex.
func (cc *benchClientConn) UpdateState(s grpcbalancer.State) {
	cc.updates.Add(1)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.last = s
	if s.ConnectivityState == connectivity.Ready {
		cc.lastReady = s.Picker
	}
	select {
	case cc.published <- struct{}{}:
	default:
	}
}

func (cc *benchClientConn) RemoveSubConn(sc grpcbalancer.SubConn) { sc.Shutdown() }

func (cc *benchClientConn) ResolveNow(resolver.ResolveNowOptions) {}

func (cc *benchClientConn) Target() string { return "bench:///pick" }

func (cc *benchClientConn) MetricsRecorder() estats.MetricsRecorder { return benchMetrics{} }

func (cc *benchClientConn) subConn(i int) *benchSubConn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if i >= len(cc.subConns) {
		return nil
	}
	return cc.subConns[i]
}

func (cc *benchClientConn) allSubConns() []*benchSubConn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return slices.Clone(cc.subConns)
}

func (cc *benchClientConn) updateCount() int64 { return cc.updates.Load() }

func (cc *benchClientConn) numSubConns() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.subConns)
}

func (cc *benchClientConn) pickers() (last grpcbalancer.State, lastReady grpcbalancer.Picker) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.last, cc.lastReady
}

// benchSubConn is a SubConn whose state the benchmark drives by hand.
// Embeds balancer.SubConn for the methods no policy here calls.
type benchSubConn struct {
	grpcbalancer.SubConn

	addrs         []resolver.Address
	stateListener func(grpcbalancer.SubConnState)

	mu             sync.Mutex
	connected      bool
	healthListener func(grpcbalancer.SubConnState)
}

func (sc *benchSubConn) Connect() {
	sc.mu.Lock()
	sc.connected = true
	sc.mu.Unlock()
}

func (sc *benchSubConn) connectCalled() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.connected
}

func (sc *benchSubConn) Shutdown() {}

func (sc *benchSubConn) RegisterHealthListener(l func(grpcbalancer.SubConnState)) {
	sc.mu.Lock()
	sc.healthListener = l
	sc.mu.Unlock()
}

func (sc *benchSubConn) GetOrBuildProducer(grpcbalancer.ProducerBuilder) (grpcbalancer.Producer, func()) {
	return nil, func() {}
}

func (sc *benchSubConn) setState(s connectivity.State) {
	sc.stateListener(grpcbalancer.SubConnState{ConnectivityState: s})
}

func (sc *benchSubConn) reportHealth(s connectivity.State) {
	sc.mu.Lock()
	l := sc.healthListener
	sc.mu.Unlock()
	if l != nil {
		l(grpcbalancer.SubConnState{ConnectivityState: s})
	}
}

// benchMetrics is a MetricsRecorder that drops everything. Embeds the
// interface because grpc requires it; every method is overridden.
type benchMetrics struct{ estats.MetricsRecorder }

func (benchMetrics) RecordInt64Count(*estats.Int64CountHandle, int64, ...string)             {}
func (benchMetrics) RecordFloat64Count(*estats.Float64CountHandle, float64, ...string)       {}
func (benchMetrics) RecordInt64Histo(*estats.Int64HistoHandle, int64, ...string)             {}
func (benchMetrics) RecordFloat64Histo(*estats.Float64HistoHandle, float64, ...string)       {}
func (benchMetrics) RecordInt64Gauge(*estats.Int64GaugeHandle, int64, ...string)             {}
func (benchMetrics) RecordInt64UpDownCount(*estats.Int64UpDownCountHandle, int64, ...string) {}
func (benchMetrics) RegisterAsyncReporter(estats.AsyncMetricReporter, ...estats.AsyncMetric) func() {
	return func() {}
}

// waitReadyPicker waits for the current state to be READY with a picker
// over n endpoints (for weighted_least_request, which publishes from its
// own goroutine; grpc-go's policies publish synchronously).
func waitReadyPicker(b *testing.B, cc *benchClientConn, pol pickBenchPolicy, n int) grpcbalancer.Picker {
	b.Helper()
	// Generous: grpc-go's policies take O(N²) to reach 10 000 endpoints
	// on a loaded 2-core machine.
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for {
		last, p := cc.pickers()
		ok := last.ConnectivityState == connectivity.Ready && p != nil
		if ok && pol.name == Name {
			wp, isW := p.(*grpcPicker)
			ok = isW && wp.p.Len() == n
		}
		if ok {
			return p
		}
		select {
		case <-cc.published:
		case <-timeout.C:
			b.Fatalf("%s: last published state %v (picker %T), want READY over %d endpoints", pol.name, last.ConnectivityState, p, n)
		}
	}
}

// BenchmarkPickRatio times weighted_least_request (defaults) and
// least_request_experimental in alternating blocks of pickRatioBlock
// Pick+Done within one benchmark, and reports each one's ns/op and their
// ratio (wlr/lr). On a shared machine the load drifts by tens of percent
// between BenchmarkPick's runs of the two policies; alternating in
// millisecond blocks exposes both to the same load, so the ratio holds
// where the separate figures do not.
func BenchmarkPickRatio(b *testing.B) {
	lr, wlr := pickBenchPolicies[1], pickBenchPolicies[2]
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			ps := [2]grpcbalancer.Picker{cachedReadyPicker(b, lr, n), cachedReadyPicker(b, wlr, n)}
			b.Run("serial", func(b *testing.B) {
				var spent [2]time.Duration
				var ops [2]int
				for i := 0; b.Loop(); i++ {
					k := (i / pickRatioBlock) & 1
					if i%pickRatioBlock == 0 {
						t0 := time.Now()
						for range pickRatioBlock {
							pickAndDone(b, ps[k])
						}
						spent[k] += time.Since(t0)
						ops[k] += pickRatioBlock
					}
				}
				reportRatio(b, spent, ops)
			})
			b.Run("parallel", func(b *testing.B) {
				var mu sync.Mutex
				var spent [2]time.Duration
				var ops [2]int
				b.RunParallel(func(pb *testing.PB) {
					var s [2]time.Duration
					var o [2]int
					for i := 0; pb.Next(); i++ {
						if i%pickRatioBlock == 0 {
							k := (i / pickRatioBlock) & 1
							t0 := time.Now()
							for range pickRatioBlock {
								pickAndDone(b, ps[k])
							}
							s[k] += time.Since(t0)
							o[k] += pickRatioBlock
						}
					}
					mu.Lock()
					defer mu.Unlock()
					for k := range s {
						spent[k] += s[k]
						ops[k] += o[k]
					}
				})
				reportRatio(b, spent, ops)
			})
		})
	}
}

// pickRatioBlock is the number of Pick+Done per timed block of
// BenchmarkPickRatio: long enough that reading the clock is negligible,
// short enough (~1ms) that both policies see the same machine load.
const pickRatioBlock = 4096

func reportRatio(b *testing.B, spent [2]time.Duration, ops [2]int) {
	if ops[0] == 0 || ops[1] == 0 {
		return
	}
	lr := float64(spent[0]) / float64(ops[0])
	wlr := float64(spent[1]) / float64(ops[1])
	b.ReportMetric(lr, "lr-ns/op")
	b.ReportMetric(wlr, "wlr-ns/op")
	b.ReportMetric(wlr/lr, "wlr/lr")
}
