// Package balancer implements the weighted_least_request load-balancing
// policy: weighted least-request over endpointsharding + pick_first
// children, with per-endpoint circuit breakers, active health probing,
// slow start and Envoy-style panic mode.
package balancer

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/picker"
	fulcrumresolver "github.com/fulcrum-lb/fulcrum/resolver"
)

// Name is the name of the policy in a service config.
const Name = "weighted_least_request"

var logger = grpclog.Component("fulcrum")

func init() {
	grpcbalancer.Register(builder{})
}

type builder struct{}

func (builder) Name() string { return Name }

func (builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	return parseConfig(js)
}

func (builder) Build(cc grpcbalancer.ClientConn, opts grpcbalancer.BuildOptions) grpcbalancer.Balancer {
	b := &wlrBalancer{
		ClientConn: cc,
		target:     opts.Target.String(),
		endpoints:  resolver.NewEndpointMap[*endpointInfo](),
		addrs:      resolver.NewAddressMapV2[*endpointInfo](),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		now:        time.Now,
	}
	b.prefix = fmt.Sprintf("[%p] ", b)
	b.child = endpointsharding.NewBalancer(b, opts, grpcbalancer.Get(pickfirst.Name).Build, endpointsharding.Options{})
	// Dialling a plain host:port gives the policy one endpoint to balance
	// over: say so once, it is the classic "only hits one instance" trap.
	fulcrumresolver.WarnIfPassthrough(opts.Target)
	go b.run()
	if buildHook != nil {
		buildHook(b)
	}
	return b
}

// buildHook lets in-package tests reach the balancer a ClientConn built.
var buildHook func(*wlrBalancer)

// wlrBalancer is the weighted_least_request balancer.
//
// Lock order: endpointsharding's mutex -> b.mu (endpointsharding calls
// UpdateState with its lock held). b.mu is never held while calling into
// the child balancer.
type wlrBalancer struct {
	// Embeds balancer.ClientConn because we need to intercept UpdateState
	// calls from the child balancer and NewSubConn calls from its
	// pick_first children.
	grpcbalancer.ClientConn

	// Read-only after Build.
	child  grpcbalancer.Balancer
	target string
	prefix string
	kick   chan struct{} // buffered(1): asks run() to rebuild the picker
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when run() has returned
	now    func() time.Time

	mu         sync.Mutex
	cfg        *LBConfig
	endpoints  *resolver.EndpointMap[*endpointInfo]
	addrs      *resolver.AddressMapV2[*endpointInfo]
	childState grpcbalancer.State // last state from endpointsharding
	gotFirst   bool               // a resolver update has been applied
	ramping    bool               // some endpoint is in slow start
	closed     bool
	closeOnce  sync.Once
}

// endpointInfo is the balancer's record of one endpoint. Fields are
// guarded by b.mu unless noted.
type endpointInfo struct {
	shared *picker.Endpoint // survives picker rebuilds; read-only pointer
	weight uint32
	// rampFrom is when slow start began for this endpoint (zero: no ramp).
	rampFrom time.Time
	// initial marks endpoints of the first resolver update: already
	// serving before the policy started, so they are not slowed.
	initial bool
	ready   bool // the endpoint's child was READY at the last build
}

func (b *wlrBalancer) infof(format string, args ...any) {
	logger.InfoDepth(1, b.prefix+fmt.Sprintf(format, args...))
}

func (b *wlrBalancer) warningf(format string, args ...any) {
	logger.WarningDepth(1, b.prefix+fmt.Sprintf(format, args...))
}

func (b *wlrBalancer) UpdateClientConnState(ccs grpcbalancer.ClientConnState) error {
	cfg, ok := ccs.BalancerConfig.(*LBConfig)
	if !ok {
		if ccs.BalancerConfig != nil {
			return fmt.Errorf("%s: received config of type %T, want *LBConfig: %w", Name, ccs.BalancerConfig, grpcbalancer.ErrBadResolverState)
		}
		cfg = DefaultConfig()
		cfg.Breaker.failureMask = failureMask(cfg.Breaker.FailureCodes)
	}
	if logger.V(2) {
		b.infof("resolver update: %d endpoints, config %+v", len(ccs.ResolverState.Endpoints), cfg)
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.cfg = cfg
	b.updateEndpointsLocked(ccs.ResolverState.Endpoints)
	b.mu.Unlock()

	// Causes an inline UpdateState from endpointsharding with the new
	// children, which builds the picker.
	return b.child.UpdateClientConnState(grpcbalancer.ClientConnState{
		// Enable the health listener in pick_first children so grpc's own
		// healthCheckConfig (and outlier detection) keeps working.
		ResolverState: pickfirst.EnableHealthListener(ccs.ResolverState),
	})
}

// updateEndpointsLocked reconciles the endpoint records with a resolver
// update. Caller must hold b.mu.
func (b *wlrBalancer) updateEndpointsLocked(eps []resolver.Endpoint) {
	seen := resolver.NewEndpointMap[bool]()
	first := !b.gotFirst
	b.gotFirst = true
	for _, ep := range eps {
		if len(ep.Addresses) == 0 {
			continue
		}
		seen.Set(ep, true)
		w, reason := attrs.Normalize(ep)
		if reason != "" {
			b.warningf("endpoint %v: %s", ep.Addresses, reason)
		}
		info, ok := b.endpoints.Get(ep)
		if !ok {
			info = &endpointInfo{
				shared:  picker.NewEndpoint(ep.Addresses[0].Addr, nil),
				initial: first,
			}
			b.endpoints.Set(ep, info)
		}
		info.weight = w
		for _, a := range ep.Addresses {
			b.addrs.Set(a, info)
		}
	}
	for ep, info := range b.endpoints.All() {
		if _, ok := seen.Get(ep); ok {
			continue
		}
		b.endpoints.Delete(ep)
		for _, a := range ep.Addresses {
			if cur, ok := b.addrs.Get(a); ok && cur == info {
				b.addrs.Delete(a)
			}
		}
	}
}

func failureMask(names []string) uint32 {
	var m uint32
	for _, n := range names {
		if c, ok := codeByName[n]; ok {
			m |= 1 << uint32(c)
		}
	}
	return m
}

func (b *wlrBalancer) ResolverError(err error) {
	// Causes an inline picker update from endpointsharding.
	b.child.ResolverError(err)
}

func (b *wlrBalancer) ExitIdle() { b.child.ExitIdle() }

func (b *wlrBalancer) UpdateSubConnState(sc grpcbalancer.SubConn, state grpcbalancer.SubConnState) {
	logger.Errorf("%sUpdateSubConnState(%v, %+v) called unexpectedly", b.prefix, sc, state)
}

func (b *wlrBalancer) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		<-b.done
		b.child.Close()
	})
}

// UpdateState intercepts endpointsharding's aggregated state and publishes
// our own picker in its place.
func (b *wlrBalancer) UpdateState(state grpcbalancer.State) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.childState = state
	b.updatePickerLocked()
}

// run rebuilds the picker when asked to (health or breaker changes) and
// periodically while an endpoint is ramping up, until Close.
func (b *wlrBalancer) run() {
	defer close(b.done)
	var tick <-chan time.Time
	for {
		select {
		case <-b.stop:
			return
		case <-b.kick:
		case <-tick:
		}
		b.mu.Lock()
		if !b.closed {
			b.updatePickerLocked()
		}
		tick = nil
		if b.ramping {
			// Re-weigh ramping endpoints ~20 times per window.
			step := min(max(time.Duration(b.cfg.SlowStart.Window)/20, 50*time.Millisecond), time.Second)
			tick = time.After(step)
		}
		b.mu.Unlock()
	}
}

// requestRebuild asks run() to rebuild the picker soon. It never blocks, so
// it may be called from Done callbacks and prober goroutines.
func (b *wlrBalancer) requestRebuild() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// updatePickerLocked builds a picker from the last child state and the
// endpoint records and publishes it. Caller must hold b.mu.
func (b *wlrBalancer) updatePickerLocked() {
	if b.cfg == nil {
		return
	}
	children := endpointsharding.ChildStatesFromPicker(b.childState.Picker)
	var entries []picker.Entry
	now := b.now()
	wasRamping := b.ramping
	b.ramping = false
	for _, c := range children {
		info, ok := b.endpoints.Get(c.Endpoint)
		if !ok {
			continue
		}
		if c.State.ConnectivityState != connectivity.Ready {
			info.ready = false
			continue
		}
		if !info.ready {
			info.ready = true
			if !info.initial && b.cfg.SlowStart.Window > 0 {
				info.rampFrom = now
			}
		}
		entries = append(entries, picker.Entry{
			Picker:   c.State.Picker,
			Endpoint: info.shared,
			Weight:   float64(info.weight) * b.slowStartFactorLocked(info, now),
		})
	}
	if b.ramping && !wasRamping {
		b.requestRebuild() // start run()'s ramp timer
	}
	if len(entries) == 0 {
		// Nothing READY: defer to endpointsharding's picker, which queues
		// RPCs while children connect and reports their failures.
		b.ClientConn.UpdateState(b.childState)
		return
	}
	b.ClientConn.UpdateState(grpcbalancer.State{
		ConnectivityState: connectivity.Ready,
		Picker:            picker.New(b.pickerConfigLocked(), entries),
	})
}

func (b *wlrBalancer) pickerConfigLocked() picker.Config {
	return picker.Config{
		ChoiceCount:       b.cfg.ChoiceCount,
		ActiveRequestBias: b.cfg.ActiveRequestBias,
		LatencyAware:      b.cfg.LatencyAware,
		LatencyDecay:      time.Duration(b.cfg.LatencyDecay),
		FailureCodes:      b.cfg.Breaker.failureMask,
	}
}

// slowStartFactorLocked returns the slow-start multiplier of info's weight
// at now, following Envoy's slow_start_config:
//
//	new_weight = weight * max(min_weight_percent,
//	                          time_factor ^ (1 / aggression))
//	time_factor = max(time_since_start_seconds, 1) / slow_start_window_seconds
//
// Caller must hold b.mu.
func (b *wlrBalancer) slowStartFactorLocked(info *endpointInfo, now time.Time) float64 {
	s := b.cfg.SlowStart
	if info.rampFrom.IsZero() || s.Window <= 0 {
		return 1
	}
	elapsed := now.Sub(info.rampFrom).Seconds()
	window := time.Duration(s.Window).Seconds()
	if elapsed >= window {
		info.rampFrom = time.Time{}
		return 1
	}
	b.ramping = true
	tf := max(elapsed, 1) / window
	return min(1, max(s.MinWeightPercent/100, pow(tf, 1/s.Aggression)))
}
