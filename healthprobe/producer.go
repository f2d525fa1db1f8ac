package healthprobe

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/grpclog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/probe"
)

var logger = grpclog.Component("fulcrum")

// producerBuilder builds the probe loop of a SubConn. opts injects the
// loop's clock and randomness: the zero value (producerBuilderSingleton) is
// real time; tests build their own builder, whose producers are distinct
// from the singleton's (grpc-go keys producers by builder).
type producerBuilder struct {
	opts probe.Options
}

var producerBuilderSingleton = &producerBuilder{}

// Build is called by SubConn.GetOrBuildProducer. cci is bound to that one
// connection: its RPCs go straight to the SubConn's transport
// (acBalancerWrapper.NewStream in grpc-go), skipping the channel's picker,
// interceptors, retries and stats handlers. So probes are never counted as
// application in-flight RPCs or breaker outcomes.
func (pb *producerBuilder) Build(cci any) (balancer.Producer, func()) {
	p := &producer{
		client: healthpb.NewHealthClient(cci.(grpc.ClientConnInterface)),
		opts:   pb.opts,
	}
	if s, ok := cci.(fmt.Stringer); ok {
		p.prefix = fmt.Sprintf("[healthprobe %v] ", s)
	} else {
		p.prefix = fmt.Sprintf("[healthprobe %p] ", p)
	}
	return p, p.close
}

// producer runs the single probe loop of one SubConn (a probe.Loop whose
// prober is p itself) and fans its verdict out to the listeners that Start
// registered.
//
// Lock order: l.mu is never taken while holding p.mu, and p.mu is never held
// while calling onChange or sending an RPC, so p.close (which grpc-go calls
// holding its own producers mutex) never blocks: it only stops the loop,
// and the stop of the last listener waits for the loop's exit.
type producer struct {
	// Read-only after Build.
	client healthpb.HealthClient
	prefix string
	opts   probe.Options

	stopped atomic.Bool // close was called: deliver nothing more

	mu        sync.Mutex
	listeners []*listener // in registration order
	cfg       GRPCConfig  // the newest listener's config; governs the loop
	loop      *probe.Loop // nil until the first listener registers
	closed    bool        // close was called; no loop will run again
}

// listener is one Start call.
type listener struct {
	cfg      GRPCConfig // read-only
	onChange func(healthy bool, reason string)
	onProbe  func(Probe) // nil: not observed

	// mu is held while onChange runs so that stop can wait for it.
	mu      sync.Mutex
	stopped bool

	// Owned by the loop goroutine: the verdict last delivered to onChange.
	delivered bool
	healthy   bool
}

func (p *producer) register(l *listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners = append(p.listeners, l)
	p.cfg = l.cfg
	switch {
	case p.closed:
		// The SubConn left READY between GetOrBuildProducer and here; the
		// caller will see that state change and stop l.
	case p.loop == nil:
		p.loop = probe.Start(p, l.cfg.Config, probe.Callbacks{
			Observe: p.observe,
			Note:    p.note,
			Verdict: p.notify,
		}, p.opts)
	default:
		// New settings apply from the next wait; the new listener gets the
		// current verdict now.
		p.loop.SetConfig(l.cfg.Config)
		p.loop.Refresh()
	}
}

func (p *producer) unregister(l *listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners = slices.DeleteFunc(p.listeners, func(x *listener) bool { return x == l })
	if n := len(p.listeners); n > 0 {
		p.cfg = p.listeners[n-1].cfg
		if p.loop != nil {
			p.loop.SetConfig(p.cfg.Config)
		}
	}
}

// close is the producer's cleanup, called by grpc-go when the last reference
// is dropped and on any SubConn state change or Shutdown. It must not block:
// grpc-go calls it holding the SubConn's producers mutex, often from inside a
// balancer that holds its own lock, which onChange may be waiting for.
func (p *producer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.stopped.Store(true)
	if p.loop != nil {
		p.loop.Stop()
	}
}

// closedChan is the done channel of a producer whose loop never started.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// closedDone returns the channel to wait on for the loop's exit if the
// producer is closed, or nil if the loop lives on for other listeners.
func (p *producer) closedDone() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case !p.closed:
		return nil
	case p.loop == nil:
		return closedChan
	}
	return p.loop.Done()
}

func (p *producer) config() GRPCConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Probe sends one Check and classifies it (probe.Prober).
func (p *producer) Probe(ctx context.Context) probe.Result {
	cfg := p.config()
	resp, err := p.client.Check(ctx, &healthpb.HealthCheckRequest{Service: cfg.Service})
	r := classify(resp, err, isTimeout(ctx), cfg)
	if logger.V(2) {
		logger.Infof("%sprobe: %v: %s", p.prefix, r.Outcome, r.Reason)
	}
	return r
}

// note logs the one-time warnings of the loop.
func (p *producer) note(r probe.Result) {
	if r.Note == probe.AssumedHealthy {
		logger.Warningf("%sserver does not implement grpc.health.v1.Health/Check; treating it as healthy (unimplementedIsHealthy=true)", p.prefix)
	}
}

// notify delivers the verdict to every listener that has not got it: its
// first verdict, or a change. The loop calls it on every change and after
// Refresh (a listener joined).
func (p *producer) notify(healthy bool, reason string) {
	// The balancer logs the endpoint's state change this causes (once);
	// the verdict itself is detail.
	if logger.V(2) {
		logger.Infof("%sverdict: healthy=%t: %s", p.prefix, healthy, reason)
	}
	p.mu.Lock()
	ls := slices.Clone(p.listeners)
	p.mu.Unlock()
	for _, l := range ls {
		if l.delivered && l.healthy == healthy {
			continue
		}
		if p.stopped.Load() {
			return
		}
		l.mu.Lock()
		if !l.stopped {
			l.onChange(healthy, reason)
		}
		l.mu.Unlock()
		l.delivered, l.healthy = true, healthy
	}
}
