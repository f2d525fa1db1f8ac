// Package balancer implements the weighted_least_request load-balancing
// policy for grpc-go: the gRPC adapter of Fulcrum's engine.
//
// It owns what is grpc-go's: the builder and service-config parsing, one
// pick_first child per endpoint (with grpc-go's health listener, so
// healthCheckConfig keeps working), the interception of their SubConns to
// start an active health prober on every READY connection, one timer for
// the engine's next decision, and the publication of pickers. What is
// usable, panic mode, the ejection cap and slow start are decided by
// package endpointset; selection and request accounting are package
// picker's. It replaces endpointsharding so that a child's state change
// costs O(1) and a burst of them one picker build, not one each.
//
// The path of one resolver update: UpdateClientConnState -> engine Update
// -> pick_first children -> SubConn READY (prober started) -> child
// UpdateState -> engine SetConn -> run loop: Decide -> picker published.
// The path of one RPC: Pick -> picker.Select -> child Pick -> Done ->
// classify -> picker.Finish (in-flight, latency, breaker).
package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/attributes"
	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/pickfirst"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/driver"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/internal/passthrough"
	"github.com/fulcrum-lb/fulcrum/policy"
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

// testClock, when set, is the clock of the balancers built afterwards (the
// engine's, its breakers' and the driver's timer); tests set it. nil is the
// real clock, on which the engine lets breakers read the cheaper monotonic
// clock alone.
var testClock clock.Clock

func (builder) Build(cc grpcbalancer.ClientConn, opts grpcbalancer.BuildOptions) grpcbalancer.Balancer {
	b := &wlrBalancer{
		cc:       cc,
		bopts:    opts,
		children: make(map[string]*child),
	}
	b.prefix = fmt.Sprintf("[fulcrum %p] ", b)
	clk := clock.OrReal(testClock)
	// The engine exists from the start, with the defaults; the first
	// config replaces them (SetConfig) before any endpoint is known.
	eo := engineOptions(DefaultConfig(), func() { b.drv.Request() })
	eo.LogPrefix, eo.Now = b.prefix, clock.NowFunc(clk)
	eo.OnBreakerChange = func(key string, from, to breaker.State) { b.obs.Metrics().BreakerChanged(key, from, to) }
	b.set = endpointset.New(DefaultConfig().EndpointSetConfig, eo)
	b.obs = newObserver(b, cc, opts)
	// Dialling a plain host:port gives the policy one endpoint to balance
	// over: say so once, it is the classic "only hits one instance" trap.
	passthrough.Warn(opts.Target)
	b.drv = driver.New(b.set, b, driver.Options{Clock: clk, Observer: b.obs})
	if buildHook != nil {
		buildHook(b)
	}
	return b
}

// buildHook lets in-package tests reach the balancer a ClientConn built.
var buildHook func(*wlrBalancer)

// wlrBalancer is the weighted_least_request balancer.
//
// Lock order: child.mu -> b.mu -> the engine's lock. b.mu is never held
// while calling into a child balancer, into grpc-go's ClientConn, or while
// stopping a prober (stop waits for a verdict callback, which takes b.mu).
type wlrBalancer struct {
	// Read-only after Build.
	cc     grpcbalancer.ClientConn
	bopts  grpcbalancer.BuildOptions
	prefix string
	obs    *driver.Observer
	set    *endpointset.Set
	drv    *driver.Driver
	// published is the Seq of the last decision handed to grpc-go.
	published atomic.Uint64

	mu          sync.Mutex
	cfg         *LBConfig // nil until the first config
	children    map[string]*child
	idle        []*child // children that reported IDLE: run reconnects them
	resolverErr error    // the last resolver error while no endpoint is known
	lastAttrs   *attributes.Attributes
	probeIv     time.Duration // probe interval of the last update, scaled (probeload.go)
	closed      bool
	closeOnce   sync.Once
}

func (b *wlrBalancer) infof(format string, args ...any) {
	logger.InfoDepth(1, b.prefix+fmt.Sprintf(format, args...))
}

func (b *wlrBalancer) warningf(format string, args ...any) {
	logger.WarningDepth(1, b.prefix+fmt.Sprintf(format, args...))
}

// requestDecision asks the driver to decide and publish soon. It never
// blocks, so it may be called from RPC and prober goroutines; a burst of
// calls yields one decision.
func (b *wlrBalancer) requestDecision() { b.drv.Request() }

func (b *wlrBalancer) UpdateClientConnState(ccs grpcbalancer.ClientConnState) error {
	cfg, ok := ccs.BalancerConfig.(*LBConfig)
	if !ok {
		if ccs.BalancerConfig != nil {
			return fmt.Errorf("%s: received config of type %T, want *LBConfig: %w", Name, ccs.BalancerConfig, grpcbalancer.ErrBadResolverState)
		}
		cfg = DefaultConfig()
		if err := policy.EnvZone(&cfg.EndpointSetConfig, os.Getenv); err != nil {
			return fmt.Errorf("%s: %v: %w", Name, err, grpcbalancer.ErrBadResolverState)
		}
	}
	if logger.V(2) {
		b.infof("resolver update: %d endpoints, config %+v", len(ccs.ResolverState.Endpoints), cfg)
	}

	type update struct {
		c  *child
		ep resolver.Endpoint
	}
	var updates []update
	members := driver.Members(ccs.ResolverState.Endpoints)
	specs := make([]endpointset.Spec, len(members))
	eps := make(map[string]resolver.Endpoint, len(members))
	for i, m := range members {
		specs[i] = m.Spec
		eps[m.Key] = m.Endpoint
		if m.Warning != "" {
			b.warningf("endpoint %v: %s", m.Addrs, m.Warning)
		}
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	probeChanged := b.cfg != nil && b.cfg.HealthProbe != cfg.HealthProbe
	b.cfg = cfg
	b.set.SetConfig(cfg.EndpointSetConfig, engineOptions(cfg, b.requestDecision))
	added, removed := b.set.Update(specs)
	for _, r := range added {
		c := &child{b: b, rec: r}
		r.Value = c
		b.children[r.Key] = c
	}
	var gone []*child
	for _, r := range removed {
		c := b.children[r.Key]
		delete(b.children, r.Key)
		gone = append(gone, c)
	}
	attrsChanged := !b.lastAttrs.Equal(ccs.ResolverState.Attributes)
	b.lastAttrs = ccs.ResolverState.Attributes
	for key, ep := range eps {
		c := b.children[key]
		// An unchanged endpoint needs no update: this keeps a resolver
		// update O(changed) in calls into children.
		if c.updated && !attrsChanged && endpointEqual(c.ep, ep) {
			continue
		}
		c.updated = true
		c.ep = ep
		updates = append(updates, update{c, ep})
	}
	if len(eps) > 0 {
		b.resolverErr = nil
	}
	// A channel that grew or shrank by half or more re-applies the probe
	// budget to the connections it is probing.
	iv := time.Duration(b.probeConfigLocked().Interval)
	rescaled := b.probeIv != 0 && (2*iv >= 3*b.probeIv || 2*b.probeIv >= 3*iv)
	b.probeIv = iv
	var restarts []*child
	if probeChanged || rescaled {
		for _, c := range b.children {
			if c.readySC != nil {
				restarts = append(restarts, c)
			}
		}
	}
	b.mu.Unlock()

	for _, c := range gone {
		c.close()
	}
	for _, u := range updates {
		u.c.update(u.ep, ccs.ResolverState.Attributes)
	}
	for _, c := range restarts {
		c.restartProbe()
	}
	b.requestDecision()
	if len(eps) == 0 {
		// grpc-go asks the resolver again (ResolveNow) on this error.
		return grpcbalancer.ErrBadResolverState
	}
	return nil
}

func (b *wlrBalancer) ResolverError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.children) > 0 {
		// Keep serving the endpoints we have.
		return
	}
	// Never had (or lost all) endpoints: fail RPCs with the resolver's
	// reason.
	b.resolverErr = err
	b.requestDecision()
}

func (b *wlrBalancer) ExitIdle() {
	b.mu.Lock()
	cs := make([]*child, 0, len(b.children))
	for _, c := range b.children {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		c.exitIdle()
	}
}

func (b *wlrBalancer) UpdateSubConnState(sc grpcbalancer.SubConn, state grpcbalancer.SubConnState) {
	logger.Errorf("%sUpdateSubConnState(%v, %+v) called unexpectedly", b.prefix, sc, state)
}

func (b *wlrBalancer) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		cs := make([]*child, 0, len(b.children))
		for _, c := range b.children {
			cs = append(cs, c)
		}
		b.mu.Unlock()
		b.drv.Close()
		for _, c := range cs {
			c.close()
		}
		b.obs.Close()
	})
}

// ErrNoUsableEndpoint is wrapped by the error of RPCs that fail because
// every endpoint is unhealthy, ejected or disconnected and panic mode is
// off.
var ErrNoUsableEndpoint = endpointset.ErrNoUsableEndpoint

type errPicker struct{ err error }

func (p *errPicker) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	return grpcbalancer.PickResult{}, p.err
}

var errNoEndpoints = errors.New("no endpoints")

// pickFirstBuilder builds the per-endpoint children.
var pickFirstBuilder = grpcbalancer.Get(pickfirst.Name)

func endpointEqual(a, b resolver.Endpoint) bool {
	return slices.EqualFunc(a.Addresses, b.Addresses, resolver.Address.Equal) && a.Attributes.Equal(b.Attributes)
}
