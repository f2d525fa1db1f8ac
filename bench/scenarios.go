package bench

import (
	"cmp"
	"fmt"
	rand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/fulcrum-lb/fulcrum"
)

// Service times. Homogeneous backends take 3ms + Exp(2ms) (mean 5ms, p99
// ~12ms): enough spread that queueing shows, short enough that 600 RPS
// keeps every backend far from saturation.
const (
	baseLatency   = 3 * time.Millisecond
	jitterLatency = 2 * time.Millisecond
)

// scenario is one fleet behaviour. Event times scale with the measured
// duration d so that a smoke run (d ~1s) still goes through every phase.
type scenario struct {
	name   string
	title  string
	models string
	notes  string // shown under the table
	n      int    // backends started
	// initial is how many of them the first resolver update lists
	// (0: all).
	initial    int
	weights    []uint32 // per backend; nil: none set
	opts       func(i int) backendOptions
	closedLoop bool
	fault      bool // gets a latency-over-time chart
	// stretch multiplies the measured duration for scenarios whose phases
	// must outlast fixed policy timers (a 5s open period); 0 means 1.
	stretch float64
	events  func(e *env, d time.Duration) []event
	// zones is each backend's zone (nil: none set); phases splits the
	// measured part into equal phases reported one by one (zones
	// scenario).
	zones  []string
	phases []zonePhase
	// policies are the policies run when none are named (nil: every
	// policy of Policies() that is not Zoned).
	policies []string
}

type event struct {
	at    time.Duration // after the start of the measured part
	label string
	fn    func()
}

// env is the fleet and resolver of one scenario x policy run.
type env struct {
	backends []*backend
	res      *manual.Resolver
	weights  []uint32
	zones    []string
	rate     float64 // open-loop arrivals per second

	mu     sync.Mutex
	active []bool // listed in the resolver state
}

func (e *env) state() resolver.State {
	e.mu.Lock()
	defer e.mu.Unlock()
	var eps []resolver.Endpoint
	for i, b := range e.backends {
		if !e.active[i] {
			continue
		}
		ep := resolver.Endpoint{Addresses: []resolver.Address{{Addr: b.addr}}}
		if e.weights != nil {
			ep = fulcrum.SetWeight(ep, e.weights[i])
		}
		if e.zones != nil {
			ep = fulcrum.SetZone(ep, e.zones[i])
		}
		eps = append(eps, ep)
	}
	return resolver.State{Endpoints: eps}
}

func (e *env) setActive(act []bool) {
	e.mu.Lock()
	copy(e.active, act)
	e.mu.Unlock()
	e.res.UpdateState(e.state())
}

func frac(d time.Duration, f float64) time.Duration { return time.Duration(f * float64(d)) }

func homogeneous(int) backendOptions {
	return backendOptions{base: baseLatency, jitter: jitterLatency}
}

// scenarios lists every scenario in report order.
func scenarios() []scenario {
	return []scenario{
		{
			name:   "homogeneous",
			title:  "Homogeneous",
			models: "4 equal backends; the baseline every other scenario is compared with.",
			n:      4, opts: homogeneous,
		},
		{
			name:   "one-slow",
			title:  "One backend 10x slower",
			models: "A backend on a noisy or degraded host: backend 0 serves every RPC 10x slower (mean 50ms) for the whole run.",
			n:      4, opts: homogeneous,
			events: func(e *env, d time.Duration) []event {
				e.backends[0].setSlow(10) // before the warmup too: a standing condition
				return nil
			},
		},
		{
			name:   "capacity-skew",
			title:  "Capacity skew",
			models: "A smaller instance: every backend runs at most 4 RPCs at once (8ms + Exp(2ms) each, ~400 RPS), backend 0 only 1 (~100 RPS); excess RPCs queue in the server. An even split sends it 150 RPS.",
			n:      4,
			opts: func(i int) backendOptions {
				o := backendOptions{base: 8 * time.Millisecond, jitter: 2 * time.Millisecond, capacity: 4}
				if i == 0 {
					o.capacity = 1
				}
				return o
			},
		},
		{
			name:   "fast-fail",
			title:  "One backend failing fast",
			models: "A backend whose dependency is down: from 15% of the run backend 0 answers every RPC with UNAVAILABLE at once while its connection and health stay up.",
			n:      4, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				b := e.backends[0]
				return []event{{frac(d, 0.15), "b0 fails", func() { b.failCode.Store(uint32(codes.Unavailable)) }}}
			},
		},
		{
			name:   "kill-restart",
			title:  "One backend killed and restarted",
			models: "A crash and restart: backend 0 is stopped hard at 25% of the run (open RPCs fail, connection refused) and serves again on the same port at 60%.",
			n:      4, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				b := e.backends[0]
				return []event{
					{frac(d, 0.25), "b0 killed", b.kill},
					{frac(d, 0.60), "b0 restarted", func() { _ = b.restart() }},
				}
			},
		},
		{
			name:   "not-serving",
			title:  "One backend NOT_SERVING",
			models: "A backend that asks to be taken out of rotation (draining, or a failed dependency check): grpc.health.v1 reports NOT_SERVING from 20% to 60% of the run. It still answers RPCs, so the cost of ignoring it shows as the share it kept receiving (column \"to NOT_SERVING\").",
			notes:  "grpc-go's policies run without a `healthCheckConfig` (their default), so they do not watch health.",
			n:      4, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				b := e.backends[0]
				return []event{
					{frac(d, 0.20), "b0 NOT_SERVING", func() { b.setNotServing(true) }},
					{frac(d, 0.60), "b0 SERVING", func() { b.setNotServing(false) }},
				}
			},
		},
		{
			name:   "stall",
			title:  "One backend stalling",
			models: "Long GC pauses or a stuck lock: backend 0 stops answering (RPCs and health checks) for 1s out of every 4s; RPCs arriving in a stall wait it out, so those arriving at its start hit the 1s deadline.",
			n:      4, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				// Two stalls in the default 6s run; shorter runs scale
				// the cycle down so they still see two.
				every := 4 * time.Second
				if d < 6*time.Second {
					every = d / 2
				}
				from := min(500*time.Millisecond, d/8)
				b := e.backends[0]
				var evs []event
				for t := from; t < d; t += every {
					evs = append(evs, event{t, "stall", nil})
				}
				evs[0].fn = func() { b.setStall(time.Now(), every, every/4) }
				return evs
			},
		},
		{
			name:   "hung",
			title:  "One backend hung",
			models: "A deadlocked process: from 15% of the run backend 0 accepts RPCs and health checks but never answers them; the TCP connection and HTTP/2 pings stay up, so the connection looks READY and discovery never notices.",
			n:      4, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				b := e.backends[0]
				return []event{{frac(d, 0.15), "b0 hangs", func() { b.hung.Store(true) }}}
			},
		},
		{
			name:   "mixed",
			title:  "Mixed faults",
			models: "Faults one after another: backend 0 hangs at 10% of the run (RPCs and health checks); backends 1 and 2 fail fast (UNAVAILABLE) from 15% to 25%; from 60% backend 1 fails fast again. With 2 of 4 ejected and 1 hung, a policy with panic mode enters it; what matters is that it leaves it once the ejections expire, so that the last failure is ejected again. The run is 2.5x the usual duration so that the 5s open periods end inside it.",
			n:      4, opts: homogeneous, fault: true, stretch: 2.5,
			events: func(e *env, d time.Duration) []event {
				b := e.backends
				fail := func(i int, c codes.Code) func() { return func() { b[i].failCode.Store(uint32(c)) } }
				return []event{
					{frac(d, 0.10), "b0 hangs", func() { b[0].hung.Store(true) }},
					{frac(d, 0.15), "b1,b2 fail", func() { fail(1, codes.Unavailable)(); fail(2, codes.Unavailable)() }},
					{frac(d, 0.25), "b1,b2 heal", func() { fail(1, codes.OK)(); fail(2, codes.OK)() }},
					{frac(d, 0.60), "b1 fails", fail(1, codes.Unavailable)},
				}
			},
		},
		{
			name:   "slow-hang",
			title:  "Slow peers and a hang onset",
			models: "A degraded fleet: backends 0-2 serve every RPC 10x slower (mean 50ms) for the whole run, backend 5 is healthy, and backends 3 and 4 hang (RPCs and health checks are never answered, the connection stays up) from 20% and 40% of the run, while RPCs are in flight on them. A latency term that only learns from RPCs that end keeps a hung backend's healthy estimate and prefers it to the slow ones until its first RPC hits the deadline (issue 21 f).",
			notes:  "Compare `fulcrum` with `fulcrum_nolatency`: the latency term must not lose more RPCs than load alone.",
			n:      6, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				for i := range 3 {
					e.backends[i].setSlow(10) // a standing condition, before the warmup too
				}
				b := e.backends
				return []event{
					{frac(d, 0.20), "b3 hangs", func() { b[3].hung.Store(true) }},
					{frac(d, 0.40), "b4 hangs", func() { b[4].hung.Store(true) }},
				}
			},
		},
		{
			name:   "hang-in-flight",
			title:  "Hangs that pass, beside slow peers",
			models: "The RPCs no breaker or probe can save: 8 backends, of which 0 and 1 serve every RPC 3x slower (mean 15ms) for the whole run, and 2, 3, 4, 5 each hang for a quarter of the run (from 10%, 30%, 50%, 70%: RPCs and health checks are never answered, the connection stays up), two at a time where they overlap. RPCs already on a backend when it hangs wait for their deadline unless something sends them elsewhere (issue 19: hedging).",
			notes:  "Compare `fulcrum` with `fulcrum_hedging` (the default `fulcrum.WithHedging`: adaptive delay, 5 % extra load): the extra-load column is counted by the servers.",
			n:      8, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				for i := range 2 {
					e.backends[i].setSlow(3) // a standing condition, before the warmup too
				}
				b := e.backends
				var evs []event
				for k := range 4 {
					i, at := 2+k, 0.10+0.20*float64(k)
					label := fmt.Sprintf("b%d", i)
					evs = append(evs,
						event{frac(d, at), label + " hangs", func() { b[i].hung.Store(true) }},
						event{frac(d, at+0.25), "", func() { b[i].hung.Store(false) }})
				}
				slices.SortStableFunc(evs, func(x, y event) int { return cmp.Compare(x.at, y.at) })
				return evs
			},
		},
		{
			name:    "cold-join",
			title:   "New backend joining cold",
			models:  "Scale-out: 3 backends serve; at 30% of the run a 4th joins through a resolver update, cold (caches empty, JIT): 5x slower at first, decaying linearly to normal over 3s.",
			n:       4,
			initial: 3, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				b := e.backends[3]
				warm := min(3*time.Second, d/2)
				return []event{{frac(d, 0.30), "b3 joins", func() {
					b.setCold(time.Now(), 5, warm)
					e.setActive([]bool{true, true, true, true})
				}}}
			},
		},
		{
			name:   "churn",
			title:  "Endpoint churn",
			models: "Autoscaling or a flapping discovery source: a pool of 6 backends; every 500ms the resolver lists backend 0 plus a random subset of the other 5 (same seed for every policy).",
			n:      6, opts: homogeneous, fault: true,
			events: func(e *env, d time.Duration) []event {
				every := min(500*time.Millisecond, d/4)
				rng := rand.New(rand.NewPCG(7, 7))
				var evs []event
				for t := every; t < d; t += every {
					act := []bool{true, false, false, false, false, false}
					for i := 1; i < len(act); i++ {
						act[i] = rng.IntN(2) == 0
					}
					evs = append(evs, event{t, "", func() { e.setActive(act) }})
				}
				return evs
			},
		},
		{
			name:    "weights",
			title:   "Weights 1:2:3:4",
			models:  "Heterogeneous capacity declared by discovery: 4 equal backends carrying weights 1, 2, 3, 4 (ideal shares 10/20/30/40%).",
			notes:   "Only Fulcrum reads the weight attribute; grpc-go's policies spread evenly by design, so their shares are shown for reference, not as a failure.",
			n:       4,
			weights: []uint32{1, 2, 3, 4}, opts: homogeneous,
		},
		{
			name:   "throughput",
			title:  "Closed-loop throughput",
			models: "Policy overhead: 8 backends answering at once, %d closed-loop workers sending back to back; QPS is what the client and servers on this machine sustain together.",
			n:      8, closedLoop: true,
			opts: func(int) backendOptions { return backendOptions{} },
		},
		zonesScenario(),
	}
}

func (s scenario) describe(o Options) string {
	if s.closedLoop {
		return fmt.Sprintf(s.models, o.Workers)
	}
	return s.models
}
