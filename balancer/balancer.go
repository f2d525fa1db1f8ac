// Package balancer implements the weighted_least_request load-balancing
// policy: weighted least-request over endpointsharding + pick_first
// children, with per-endpoint circuit breakers, active health probing,
// slow start and Envoy-style panic mode.
package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
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
		endpoints:  resolver.NewEndpointMap[*endpointInfo](),
		addrs:      resolver.NewAddressMapV2[*endpointInfo](),
		scs:        make(map[grpcbalancer.SubConn]*scInfo),
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
	// removedAt remembers when an endpoint (by first address) left the
	// resolver's list, so that one that comes back within the slow-start
	// window is not ramped up again: under endpoint churn every re-added
	// endpoint would otherwise restart at minWeightPercent and the stable
	// endpoints would carry most of the traffic (measured: 69 % on one of
	// four with churn every 500ms).
	removedAt map[string]time.Time
	panicking bool // the last picker was built in panic mode
	scs       map[grpcbalancer.SubConn]*scInfo
	closed    bool
	closeOnce sync.Once
}

// scInfo is the balancer's record of one SubConn created by a pick_first
// child. Guarded by b.mu.
type scInfo struct {
	ep    *endpointInfo
	ready bool
	stop  func() // stops the health prober; nil when not probing
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
	// everReady: the endpoint has been READY at least once. One that is
	// still making its first connection is not counted as unusable by
	// panic mode (at start-up every endpoint is connecting).
	everReady bool
	usable    bool // the endpoint was usable at the last build (for slow start)
	picked    bool // scratch of updatePickerLocked: in the picker being built

	// Health, from the prober of the endpoint's READY SubConn.
	probing bool // a prober runs for the endpoint's READY SubConn
	verdict bool // the prober has given a first verdict
	healthy bool // the prober's current verdict
	warmed  bool // a successful probe since the SubConn became READY
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
		cfg, _ = parseConfig(nil) // the defaults, validated
	}
	if logger.V(2) {
		b.infof("resolver update: %d endpoints, config %+v", len(ccs.ResolverState.Endpoints), cfg)
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	breakerChanged := b.cfg != nil && !breakerConfigEqual(b.cfg.Breaker, cfg.Breaker)
	probeChanged := b.cfg != nil && b.cfg.HealthProbe != cfg.HealthProbe
	b.cfg = cfg
	b.updateEndpointsLocked(ccs.ResolverState.Endpoints, breakerChanged)
	var restart []grpcbalancer.SubConn
	var stops []func()
	if probeChanged {
		// Restart probers so the new probe settings apply at once.
		for sc, sci := range b.scs {
			if sci.ready {
				restart = append(restart, sc)
				if sci.stop != nil {
					stops = append(stops, sci.stop)
					sci.stop = nil
				}
			}
		}
	}
	b.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	for _, sc := range restart {
		b.onSubConnState(sc, grpcbalancer.SubConnState{ConnectivityState: connectivity.Ready})
	}

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
func (b *wlrBalancer) updateEndpointsLocked(eps []resolver.Endpoint, breakerChanged bool) {
	for addr, at := range b.removedAt {
		if b.now().Sub(at) >= time.Duration(b.cfg.SlowStart.Window) {
			delete(b.removedAt, addr)
		}
	}
	seen := resolver.NewEndpointMap[bool]()
	first := !b.gotFirst
	b.gotFirst = true
	// Weights are normalized as a set: grpc-go's xDS weights are scaled together.
	ws, reasons := attrs.NormalizeAll(eps)
	for i, ep := range eps {
		if len(ep.Addresses) == 0 {
			continue
		}
		seen.Set(ep, true)
		w, reason := ws[i], reasons[i]
		if reason != "" {
			b.warningf("endpoint %v: %s", ep.Addresses, reason)
		}
		info, ok := b.endpoints.Get(ep)
		if !ok {
			recent := false
			if at, ok := b.removedAt[ep.Addresses[0].Addr]; ok {
				recent = b.now().Sub(at) < time.Duration(b.cfg.SlowStart.Window)
				delete(b.removedAt, ep.Addresses[0].Addr)
			}
			info = &endpointInfo{initial: first || recent}
			info.shared = b.newSharedLocked(ep.Addresses[0].Addr)
			b.endpoints.Set(ep, info)
		} else if breakerChanged {
			// In-flight RPCs of the old record still decrement it.
			info.shared = b.newSharedLocked(ep.Addresses[0].Addr)
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
		if info.usable {
			if b.removedAt == nil {
				b.removedAt = make(map[string]time.Time)
			}
			b.removedAt[ep.Addresses[0].Addr] = b.now()
		}
		for _, a := range ep.Addresses {
			if cur, ok := b.addrs.Get(a); ok && cur == info {
				b.addrs.Delete(a)
			}
		}
	}
}

// newSharedLocked returns fresh shared state (counters, breaker) for the
// endpoint at addr. Caller must hold b.mu.
func (b *wlrBalancer) newSharedLocked(addr string) *picker.Endpoint {
	bc := b.cfg.Breaker
	if !bc.Enabled {
		return picker.NewEndpoint(addr, nil)
	}
	cfg := breaker.Config{
		ConsecutiveFailures: bc.ConsecutiveFailures,
		FailureRatio:        bc.FailureRatio,
		MinRequests:         bc.MinRequests,
		Window:              time.Duration(bc.Window),
		OpenDuration:        time.Duration(bc.OpenDuration),
		MaxOpenDuration:     time.Duration(bc.MaxOpenDuration),
		HalfOpenRequests:    bc.HalfOpenRequests,
	}
	if err := cfg.Validate(); err != nil {
		// parseConfig enforces tighter bounds; this is a broken invariant.
		logger.Errorf("%sbreaker config %+v: %v; breaker disabled for %s", b.prefix, cfg, err, addr)
		return picker.NewEndpoint(addr, nil)
	}
	onChange := func(from, to breaker.State, reason string) {
		// Runs inside Pick or Done: log and ask for a rebuild, never block.
		b.infof("endpoint %s: breaker %v -> %v: %s", addr, from, to, reason)
		b.requestRebuild()
	}
	return picker.NewEndpoint(addr, breaker.New(cfg, breakerClock, onChange))
}

// breakerClock is the breakers' clock; tests may replace it.
var breakerClock func() int64

// breakerConfigEqual compares what the breakers are built from; failure
// codes live in the picker's config and need no new breakers.
func breakerConfigEqual(a, b BreakerConfig) bool {
	a.FailureCodes, a.failureMask = nil, 0
	b.FailureCodes, b.failureMask = nil, 0
	return reflect.DeepEqual(a, b)
}

// NewSubConn intercepts the SubConns of the pick_first children to learn
// when each becomes READY, so it can probe it and hold it back until warm.
func (b *wlrBalancer) NewSubConn(addrs []resolver.Address, opts grpcbalancer.NewSubConnOptions) (grpcbalancer.SubConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(addrs) == 0 {
		return nil, fmt.Errorf("%s: balancer is closed; no new SubConns", Name)
	}
	// pick_first creates one SubConn per address (dual-stack endpoints
	// have several); all map to the same endpoint.
	info, ok := b.addrs.Get(addrs[0])
	if !ok {
		return nil, fmt.Errorf("%s: address %s belongs to no endpoint", Name, addrs[0].Addr)
	}
	var sc grpcbalancer.SubConn
	old := opts.StateListener
	opts.StateListener = func(st grpcbalancer.SubConnState) {
		b.onSubConnState(sc, st)
		old(st)
	}
	sc, err := b.ClientConn.NewSubConn(addrs, opts)
	if err != nil {
		return nil, err
	}
	b.scs[sc] = &scInfo{ep: info}
	return sc, nil
}

// onSubConnState starts a prober when a SubConn becomes READY and stops it
// when it leaves READY. It runs before pick_first sees the state, so the
// endpoint is already marked as warming when the picker is rebuilt.
func (b *wlrBalancer) onSubConnState(sc grpcbalancer.SubConn, st grpcbalancer.SubConnState) {
	b.mu.Lock()
	sci, ok := b.scs[sc]
	if !ok || b.closed {
		b.mu.Unlock()
		return
	}
	stop := sci.stop
	sci.stop = nil
	ep := sci.ep
	switch st.ConnectivityState {
	case connectivity.Ready:
		sci.ready = true
		ep.verdict, ep.healthy, ep.warmed = false, false, false
		ep.probing = b.cfg.HealthProbe.Enabled
	case connectivity.Shutdown:
		delete(b.scs, sc)
		fallthrough
	default:
		if sci.ready {
			sci.ready = false
			ep.probing, ep.verdict = false, false
		}
	}
	probe := sci.ready && b.cfg.HealthProbe.Enabled
	pcfg := b.probeConfigLocked()
	b.mu.Unlock()

	// Never stop a prober while holding b.mu: stop waits for onChange,
	// which takes b.mu.
	if stop != nil {
		stop()
	}
	if !probe {
		return
	}
	stopProbe := healthprobe.Start(sc, pcfg, func(healthy bool, reason string) {
		b.onHealth(sc, sci, healthy, reason)
	})
	b.mu.Lock()
	if b.scs[sc] != sci || !sci.ready || sci.stop != nil || b.closed {
		// The SubConn moved on while we started: undo.
		b.mu.Unlock()
		stopProbe()
		return
	}
	sci.stop = stopProbe
	b.mu.Unlock()
}

func (b *wlrBalancer) probeConfigLocked() healthprobe.Config {
	h := b.cfg.HealthProbe
	return healthprobe.Config{
		Service:                h.Service,
		Interval:               time.Duration(h.Interval),
		Timeout:                time.Duration(h.Timeout),
		Jitter:                 h.Jitter,
		UnhealthyThreshold:     h.UnhealthyThreshold,
		HealthyThreshold:       h.HealthyThreshold,
		UnimplementedIsHealthy: h.UnimplementedIsHealthy,
	}
}

// onHealth records a prober verdict and republishes the picker.
func (b *wlrBalancer) onHealth(sc grpcbalancer.SubConn, sci *scInfo, healthy bool, reason string) {
	b.mu.Lock()
	if b.closed || b.scs[sc] != sci || !sci.ready {
		b.mu.Unlock()
		return
	}
	ep := sci.ep
	first := !ep.verdict
	changed := first || ep.healthy != healthy
	ep.verdict, ep.healthy = true, healthy
	ep.warmed = ep.warmed || healthy
	addr := ep.shared.Addr()
	b.mu.Unlock()
	if changed {
		switch {
		case first && healthy:
			b.infof("endpoint %s: first health probe passed; taking traffic", addr)
		case healthy:
			b.infof("endpoint %s: health unhealthy -> healthy: %s", addr, reason)
		default:
			b.warningf("endpoint %s: health -> unhealthy: %s", addr, reason)
		}
		b.requestRebuild()
	}
}

// failureMask turns failure code names (any case) into the picker's
// bitmask; unknown names are left out (validate reports them).
func failureMask(names []string) uint32 {
	var m uint32
	for _, n := range names {
		if c, ok := codeByName[strings.ToUpper(n)]; ok && c != codes.OK {
			m |= 1 << uint32(c)
		}
	}
	return m
}

func (b *wlrBalancer) ResolverError(err error) {
	// Causes an inline picker update from endpointsharding.
	b.child.ResolverError(err)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.endpoints.Len() > 0 {
		// Keep serving the endpoints we have; the children decide.
		return
	}
	// Never had (or lost all) endpoints: fail RPCs with the resolver's
	// reason instead of endpointsharding's "no children to pick from".
	b.ClientConn.UpdateState(grpcbalancer.State{
		ConnectivityState: connectivity.TransientFailure,
		Picker:            &errPicker{err: fmt.Errorf("%s: no endpoints: resolver error: %v", Name, err)},
	})
}

func (b *wlrBalancer) ExitIdle() { b.child.ExitIdle() }

func (b *wlrBalancer) UpdateSubConnState(sc grpcbalancer.SubConn, state grpcbalancer.SubConnState) {
	logger.Errorf("%sUpdateSubConnState(%v, %+v) called unexpectedly", b.prefix, sc, state)
}

func (b *wlrBalancer) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		var stops []func()
		for _, sci := range b.scs {
			if sci.stop != nil {
				stops = append(stops, sci.stop)
				sci.stop = nil
			}
		}
		b.mu.Unlock()
		close(b.stop)
		<-b.done
		for _, stop := range stops {
			stop()
		}
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
//
// An endpoint is usable when its connection is READY, its prober (if on)
// says healthy, it has passed warm-up, and its breaker is not ejecting it.
// Breakers are consulted again on every pick, so a trip takes effect on the
// next pick; the rebuild it triggers only refreshes panic mode and the
// maxEjectionPercent cap.
func (b *wlrBalancer) updatePickerLocked() {
	if b.cfg == nil {
		return
	}
	children := endpointsharding.ChildStatesFromPicker(b.childState.Picker)
	now := b.now()
	wasRamping := b.ramping
	b.ramping = false

	type cand struct {
		info  *endpointInfo
		child grpcbalancer.Picker
	}
	var ready, healthy []cand
	var ejected []int // indexes into healthy whose breaker rejects calls
	warming, unhealthy := 0, 0
	for _, c := range children {
		info, ok := b.endpoints.Get(c.Endpoint)
		if !ok {
			continue
		}
		if c.State.ConnectivityState != connectivity.Ready {
			info.usable = false
			if !info.everReady {
				warming++
			}
			continue
		}
		info.everReady, info.picked = true, false
		ready = append(ready, cand{info, c.State.Picker})
		switch {
		case info.probing && b.cfg.HealthProbe.Warmup && !info.warmed:
			if info.verdict {
				unhealthy++ // failed its first probe(s)
			} else {
				warming++
			}
			continue
		case info.probing && info.verdict && !info.healthy:
			unhealthy++
			continue
		}
		if br := info.shared.Breaker(); br != nil && !br.Admits() {
			ejected = append(ejected, len(healthy))
		}
		healthy = append(healthy, cand{info, c.State.Picker})
	}

	// "maxEjectionPercent: never eject more than this share of endpoints"
	// (at least one may be): endpoints beyond the cap stay in rotation
	// despite their breaker, in a stable (address) order.
	total := len(children)
	maxEject := max(1, int(b.cfg.MaxEjectionPercent*float64(total)/100))
	if b.cfg.MaxEjectionPercent == 0 {
		maxEject = 0
	}
	slices.SortFunc(ejected, func(i, j int) int {
		return strings.Compare(healthy[i].info.shared.Addr(), healthy[j].info.shared.Addr())
	})
	bypass := map[int]bool{}
	for _, i := range ejected[min(maxEject, len(ejected)):] {
		bypass[i] = true
	}
	nEjected := len(ejected) - len(bypass)
	usable := len(healthy) - nEjected

	// Envoy's panic mode: "if the percentage of healthy hosts drops below
	// the panic threshold, ... load balance across all hosts". Endpoints
	// still warming up (first connection or first probe pending) do not
	// count either way: they are not sick, just not yet proven.
	considered := total - warming
	panicking := b.cfg.PanicThresholdPercent > 0 && considered > 0 &&
		float64(usable)*100 < b.cfg.PanicThresholdPercent*float64(considered) && len(ready) > 0
	if panicking != b.panicking {
		if panicking {
			b.warningf("panic mode: %d of %d endpoints usable (%d unhealthy, %d ejected by breaker, %d not connected), below panicThresholdPercent %g; picking among all %d connected endpoints",
				usable, total, unhealthy, nEjected, total-len(ready), b.cfg.PanicThresholdPercent, len(ready))
		} else {
			b.infof("panic mode over: %d of %d endpoints usable, %d warming up", usable, total, warming)
		}
		b.panicking = panicking
	}

	var entries []picker.Entry
	add := func(c cand, gated bool) {
		info := c.info
		if !info.usable && !info.initial && b.cfg.SlowStart.Window > 0 {
			info.rampFrom = now // became usable: start its ramp
		}
		info.picked = true
		entries = append(entries, picker.Entry{
			Picker:   c.child,
			Endpoint: info.shared,
			Weight:   float64(info.weight) * b.slowStartFactorLocked(info, now),
			Gated:    gated,
		})
	}
	if panicking {
		for _, c := range ready {
			add(c, false)
		}
	} else {
		for i, c := range healthy {
			add(c, c.info.shared.Breaker() != nil && !bypass[i])
		}
	}
	for _, c := range ready {
		c.info.usable = c.info.picked
	}
	if b.ramping && !wasRamping {
		b.requestRebuild() // start run()'s ramp timer
	}

	switch {
	case len(ready) == 0:
		// Nothing READY: defer to endpointsharding's picker, which queues
		// RPCs while children connect and reports their failures.
		b.ClientConn.UpdateState(b.childState)
	case len(entries) == 0 && warming > 0:
		// Connected but not yet probed: RPCs wait for the first probe.
		b.ClientConn.UpdateState(grpcbalancer.State{
			ConnectivityState: connectivity.Connecting,
			Picker:            &errPicker{err: grpcbalancer.ErrNoSubConnAvailable},
		})
	case len(entries) == 0:
		// Panic mode is off (or nothing is connected): fail RPCs with the
		// reason. A plain error (not a status) fails ordinary RPCs with
		// UNAVAILABLE and keeps wait-for-ready RPCs waiting.
		err := fmt.Errorf("%s: no usable endpoint among %d: %d unhealthy, %d ejected by breaker, %d not connected: %w",
			Name, total, unhealthy, nEjected, total-len(ready), ErrNoUsableEndpoint)
		b.ClientConn.UpdateState(grpcbalancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            &errPicker{err: err},
		})
	default:
		b.ClientConn.UpdateState(grpcbalancer.State{
			ConnectivityState: connectivity.Ready,
			Picker:            picker.New(b.pickerConfigLocked(), entries),
		})
	}
}

// ErrNoUsableEndpoint is wrapped by the error of RPCs that fail because
// every endpoint is unhealthy or ejected and panic mode is off.
var ErrNoUsableEndpoint = errors.New("no usable endpoint")

type errPicker struct{ err error }

func (p *errPicker) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	return grpcbalancer.PickResult{}, p.err
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
	return min(1, max(s.MinWeightPercent/100, math.Pow(tf, 1/s.Aggression)))
}
