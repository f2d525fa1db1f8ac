package resolver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"google.golang.org/grpc/resolver"
)

// errSuspiciousEmpty is how the common layer treats an empty, non
// authoritative set: like a source error, so the last good set is kept.
var errSuspiciousEmpty = errors.New("source reported no endpoints without marking the set authoritative")

// fulcrumResolver is the common layer shared by every Source: it turns
// Updates into channel state, pushes only real changes and keeps the last
// known good set while the source fails.
//
// Every Update is handled on the run goroutine, the only one that calls cc;
// report only queues. Close cancels ctx, stops the source, then waits for run.
type fulcrumResolver struct {
	// Read-only after construction.
	target string
	tc     targetConfig
	cc     resolver.ClientConn
	clk    clock.Clock
	logger *prefixLogger
	// handled, if set (by tests), is called on the run goroutine after each
	// Update has been handled: the point at which a test knows that an
	// update which changed nothing was seen rather than superseded.
	handled func()
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	wake    chan struct{} // capacity 1: pending has news

	// Set by start, read by ResolveNow and Close; grpc-go calls those two
	// and Build serially, on one serializer.
	resolveNow func()
	stopSource func()
	closeOnce  sync.Once

	mu      sync.Mutex
	pending []Update // at most a set followed by an error; guarded by mu

	// Owned by the run goroutine.
	serving  bool        // the channel has good (even if good is empty)
	good     []endpoint  // the set last pushed
	failing  bool        // the source is reporting errors or suspicious sets
	lastErr  error       // the latest of those
	errs     ErrorOnce   // which of those to log
	ttlTimer clock.Timer // non-nil while failing with a TTL armed
	// holdTimer is non-nil while an empty answer is held off (hold.go),
	// since heldSince.
	holdTimer clock.Timer
	heldSince time.Time
	metrics   resolverMetrics

	status      status // for fulcrumz
	unregisterz func() // removes the resolver from fulcrumz; set by Build
}

func newFulcrumResolver(target string, tc targetConfig, cc resolver.ClientConn, clk clock.Clock) *fulcrumResolver {
	ctx, cancel := context.WithCancel(context.Background())
	r := &fulcrumResolver{
		target: target,
		tc:     tc,
		cc:     cc,
		clk:    clk,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	r.logger = newPrefixLogger("[fulcrum-resolver %p] ", r)
	return r
}

// start asks the source to watch; a source error here (a malformed name) fails
// Build.
func (r *fulcrumResolver) start() error {
	resolveNow, stop, err := r.tc.source.Watch(r.ctx, r.tc.name, r.report)
	if err != nil {
		r.cancel()
		if stop != nil {
			stop()
		}
		return err
	}
	if resolveNow == nil {
		resolveNow = func() {}
	}
	if stop == nil {
		stop = func() {}
	}
	r.resolveNow, r.stopSource = resolveNow, stop
	if r.logger.V(2) {
		r.logger.Infof("target %q: watching %q with source %s", r.target, r.tc.name, r.tc.sourceName)
	}
	go r.run()
	return nil
}

// report queues u for the run goroutine. Each Update with endpoints is a full
// set, so it supersedes everything queued before it, and only the latest of
// consecutive errors matters: the queue never holds more than two entries.
func (r *fulcrumResolver) report(u Update) {
	r.mu.Lock()
	if r.ctx.Err() != nil {
		r.mu.Unlock()
		return
	}
	switch {
	case u.Err == nil:
		r.pending = append(r.pending[:0], u)
	case len(r.pending) > 0 && r.pending[len(r.pending)-1].Err != nil:
		r.pending[len(r.pending)-1] = u
	default:
		r.pending = append(r.pending, u)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *fulcrumResolver) run() {
	defer close(r.done)
	r.publish()
	for {
		var ttlC, holdC <-chan time.Time // nil: no TTL armed, no hold
		if r.ttlTimer != nil {
			ttlC = r.ttlTimer.C()
		}
		if r.holdTimer != nil {
			holdC = r.holdTimer.C()
		}
		select {
		case <-r.ctx.Done():
			r.stopTTL()
			r.stopHold()
			return
		case <-r.wake:
			r.mu.Lock()
			batch := r.pending
			r.pending = nil
			r.mu.Unlock()
			for _, u := range batch {
				r.handle(u)
				r.publish()
				if r.handled != nil {
					r.handled()
				}
			}
		case <-ttlC:
			r.ttlTimer = nil
			r.expire()
			r.publish()
		case <-holdC:
			r.holdExpired()
			r.publish()
		}
	}
}

func (r *fulcrumResolver) handle(u Update) {
	if u.Err != nil {
		r.handleErr(u.Err)
		return
	}
	eps, problems := canonicalize(u.Endpoints)
	for _, p := range problems {
		r.logger.Warningf("target %q: %s", r.target, p)
	}
	switch {
	case len(eps) == 0 && len(u.Endpoints) > 0:
		r.handleErr(fmt.Errorf("all %d endpoints the source reported are invalid", len(u.Endpoints)))
		return
	case len(eps) == 0 && !u.Authoritative:
		// Discovery systems briefly report nothing during restarts and
		// partitions; emptying the channel on such a blip fails every RPC.
		// Only a source that knows the service has no instances may say so.
		r.handleErr(errSuspiciousEmpty)
		return
	case len(eps) == 0 && r.holds(u):
		r.holdEmpty()
		return
	}
	held := r.endHold()
	r.metrics.confirmed(r.clk.Now())
	r.recovered()
	if r.serving && slices.EqualFunc(eps, r.good, endpoint.equal) {
		if held {
			r.pushHeld() // the same set, no longer held
		}
		return
	}
	r.good, r.serving = eps, true
	r.metrics.pushed()
	r.push()
}

// push sends r.good to the channel and logs the change.
func (r *fulcrumResolver) push() {
	state := attrs.SetEmptyHeld(toState(r.good), r.holdTimer != nil)
	n := len(state.Addresses)
	switch len(r.good) {
	case 0:
		r.logger.Warningf("target %q resolved to 0 endpoints (the source says the service has none); RPCs will fail", r.target)
	case 1:
		r.logger.Warningf("target %q resolved to a single endpoint %v: every RPC goes to that one instance, there is nothing to balance", r.target, r.good[0].addrs)
	default:
		r.logger.Infof("target %q resolved to %d endpoints (%d addresses)", r.target, len(r.good), n)
	}
	if r.logger.V(2) {
		r.logger.Infof("target %q: endpoints %v", r.target, r.good)
	}
	if err := r.cc.UpdateState(state); err != nil && len(r.good) > 0 {
		// The sources re-resolve on their own schedule; nothing to retry here.
		r.logger.Infof("target %q: channel rejected the update: %v", r.target, err)
	}
}

// pushHeld tells the channel that the set it has is, or is no longer, held
// against an empty answer (attrs.EmptyHeld): the same endpoints, without
// the logs and metrics of a change.
func (r *fulcrumResolver) pushHeld() {
	if err := r.cc.UpdateState(attrs.SetEmptyHeld(toState(r.good), r.holdTimer != nil)); err != nil {
		r.logger.Infof("target %q: channel rejected the update: %v", r.target, err)
	}
}

// recovered ends a failure: the source answered.
func (r *fulcrumResolver) recovered() {
	if r.failing {
		r.logger.Infof("target %q: source recovered", r.target)
		r.failing, r.lastErr = false, nil
		r.errs.Clear()
		r.stopTTL()
	}
}

func (r *fulcrumResolver) handleErr(err error) {
	if r.endHold() {
		r.pushHeld() // the last known good set, no longer held
	}
	news := r.errs.New(err) // logged once per distinct message
	r.lastErr = err
	r.metrics.sourceError(r.serving)
	if !r.failing {
		r.failing = true
		if r.serving && r.tc.lkgTTL > 0 {
			r.ttlTimer = r.clk.NewTimer(r.tc.lkgTTL)
		}
	}
	if r.serving {
		if news {
			r.logger.Warningf("target %q: %v; keeping the last known good set of %d endpoints", r.target, err, len(r.good))
		}
		return
	}
	if news {
		r.logger.Warningf("target %q: %v; no good set to fall back to", r.target, err)
	}
	r.cc.ReportError(fmt.Errorf("fulcrum resolver: target %q: %w", r.target, err))
}

// expire ends last-known-good serving after lkgTTL of uninterrupted failure:
// the channel is told there are no endpoints, so RPCs fail instead of going
// to a list that may be long gone, and the source's error is reported.
func (r *fulcrumResolver) expire() {
	if !r.failing || !r.serving {
		return
	}
	r.logger.Warningf("target %q: source failing for lkgTTL=%v (%v); dropping the last known good set of %d endpoints", r.target, r.tc.lkgTTL, r.lastErr, len(r.good))
	r.serving, r.good = false, nil
	r.metrics.dropped()
	r.cc.UpdateState(resolver.State{})
	r.cc.ReportError(fmt.Errorf("fulcrum resolver: target %q: %w", r.target, r.lastErr))
}

func (r *fulcrumResolver) stopTTL() {
	if r.ttlTimer != nil {
		r.ttlTimer.Stop()
		r.ttlTimer = nil
	}
}

// ResolveNow passes the channel's hint on; sources rate-limit it themselves.
func (r *fulcrumResolver) ResolveNow(resolver.ResolveNowOptions) {
	if r.ctx.Err() == nil {
		r.resolveNow()
	}
}

// Close stops the source and the run goroutine and waits for both.
func (r *fulcrumResolver) Close() {
	r.closeOnce.Do(func() {
		r.cancel()
		r.stopSource()
		<-r.done
		r.metrics.close()
		if r.unregisterz != nil {
			r.unregisterz()
		}
	})
}
