package healthprobe

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/grpclog"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

var logger = grpclog.Component("fulcrum")

// Injected by tests to make the loop's timing deterministic: the wait
// between probes, its jitter, and each probe's timeout.
var (
	timeAfter   = time.After
	randFloat   = rand.Float64 // [0, 1); the top-level function is safe for concurrent use
	withTimeout = context.WithTimeout
)

// jittered returns the wait before the next probe, uniform from
// interval*(1-jitter) to interval*(1+jitter).
func jittered(interval time.Duration, jitter float64) time.Duration {
	return time.Duration(float64(interval) * (1 + jitter*(2*randFloat()-1)))
}

type producerBuilder struct{}

var producerBuilderSingleton = &producerBuilder{}

// Build is called by SubConn.GetOrBuildProducer. cci is bound to that one
// connection: its RPCs go straight to the SubConn's transport
// (acBalancerWrapper.NewStream in grpc-go), skipping the channel's picker,
// interceptors, retries and stats handlers. So probes are never counted as
// application in-flight RPCs or breaker outcomes.
func (*producerBuilder) Build(cci any) (balancer.Producer, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{
		client: healthpb.NewHealthClient(cci.(grpc.ClientConnInterface)),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
	if s, ok := cci.(fmt.Stringer); ok {
		p.prefix = fmt.Sprintf("[healthprobe %v] ", s)
	} else {
		p.prefix = fmt.Sprintf("[healthprobe %p] ", p)
	}
	return p, p.close
}

// producer runs the single probe loop of one SubConn and fans its verdict out
// to the listeners that Start registered.
//
// Lock order: l.mu is never taken while holding p.mu, and p.mu is never held
// while calling onChange or sending an RPC, so p.close (which grpc-go calls
// holding its own producers mutex) never blocks.
type producer struct {
	// Read-only after Build.
	client healthpb.HealthClient
	prefix string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run exits, or by close if run never started
	kick   chan struct{} // a listener joined: deliver the current verdict now

	// Owned by the run goroutine.
	v           Verdict
	warnedUnimp bool

	mu        sync.Mutex
	listeners []*listener // in registration order
	cfg       GRPCConfig  // the newest listener's config; governs the loop
	started   bool        // run was started
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

	// Owned by the run goroutine: the verdict last delivered to onChange.
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
	case !p.started:
		p.started = true
		go p.run()
	default:
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (p *producer) unregister(l *listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners = slices.DeleteFunc(p.listeners, func(x *listener) bool { return x == l })
	if n := len(p.listeners); n > 0 {
		p.cfg = p.listeners[n-1].cfg
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
	p.cancel()
	if !p.started {
		close(p.done)
	}
}

// closedDone returns the channel to wait on for the loop's exit if the
// producer is closed, or nil if the loop lives on for other listeners.
func (p *producer) closedDone() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		return nil
	}
	return p.done
}

func (p *producer) config() GRPCConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// run is the probe loop: probe, deliver the verdict, wait Interval±Jitter,
// and again, until close. The first probe is sent at once.
func (p *producer) run() {
	defer close(p.done)
	for {
		cfg := p.config()
		ok, why, pr := p.probe(cfg)
		if p.ctx.Err() != nil {
			return
		}
		p.observe(pr)
		// The balancer logs the endpoint's state change this causes (once);
		// the verdict itself is detail.
		if p.v.Observe(ok, why, cfg.HealthyThreshold, cfg.UnhealthyThreshold) && logger.V(2) {
			logger.Infof("%sverdict: healthy=%t: %s", p.prefix, p.v.healthy, p.v.reason)
		}
		p.notify()

		timer := timeAfter(jittered(time.Duration(cfg.Interval), cfg.Jitter))
	wait:
		for {
			select {
			case <-p.ctx.Done():
				return
			case <-p.kick:
				p.notify()
				// A listener with new settings joined: wait the new
				// interval from now rather than the rest of the old one.
				if c := p.config(); c != cfg {
					cfg = c
					timer = timeAfter(jittered(time.Duration(cfg.Interval), cfg.Jitter))
				}
			case <-timer:
				break wait
			}
		}
	}
}

// probe sends one Check and classifies its outcome.
func (p *producer) probe(cfg GRPCConfig) (ok bool, why string, pr Probe) {
	ctx, cancel := withTimeout(p.ctx, time.Duration(cfg.Timeout))
	defer cancel()
	resp, d, err := timedProbe(ctx, p.client, cfg)
	ok, why = classify(resp, err, isTimeout(ctx), cfg)
	pr = Probe{Outcome: outcomeOf(resp, err, isTimeout(ctx), cfg), Reason: why, At: time.Now(), Duration: d}
	if status.Code(err) == codes.Unimplemented && cfg.UnimplementedIsHealthy && !p.warnedUnimp {
		p.warnedUnimp = true
		logger.Warningf("%sserver does not implement grpc.health.v1.Health/Check; treating it as healthy (unimplementedIsHealthy=true)", p.prefix)
	}
	if logger.V(2) {
		logger.Infof("%sprobe: ok=%t: %s", p.prefix, ok, why)
	}
	return ok, why, pr
}

// notify delivers the current verdict to every listener that has not got it:
// its first verdict, or a change.
func (p *producer) notify() {
	if !p.v.known {
		return
	}
	p.mu.Lock()
	ls := slices.Clone(p.listeners)
	p.mu.Unlock()
	for _, l := range ls {
		if l.delivered && l.healthy == p.v.healthy {
			continue
		}
		if p.ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		if !l.stopped {
			l.onChange(p.v.healthy, p.v.reason)
		}
		l.mu.Unlock()
		l.delivered, l.healthy = true, p.v.healthy
	}
}
