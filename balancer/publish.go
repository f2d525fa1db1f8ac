package balancer

import (
	"fmt"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// run makes the engine's decisions and publishes them, until Close: after
// every batch of events (requestDecision coalesces them) and at the
// engine's next decision time, on one timer. Nothing that changes with time
// (an open period ending, a slow-start step) waits for an unrelated event.
func (b *wlrBalancer) run() {
	defer close(b.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	defer pace.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.kick:
		case <-timer.C:
		}
		b.reconnectIdle()
		start := time.Now()
		next, ok := b.publish()
		if !ok {
			continue
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(next.Sub(now()), time.Millisecond))
		}
		// A decision costs O(N) (about 0.5ms at 10 000 endpoints). Under
		// a stream of events, rest paceFactor times its cost before the
		// next, so that this goroutine takes at most 1/(paceFactor+1) of
		// a core and the events meanwhile make one decision: a change
		// waits at most paceFactor+1 decisions' time (a few ms at 10 000
		// endpoints, nothing below pacedCost).
		if cost := time.Since(start); cost >= pacedCost {
			pace.Reset(paceFactor * cost)
			select {
			case <-b.stop:
				return
			case <-pace.C:
			}
		}
	}
}

// Pacing of decisions: see run.
const (
	paceFactor = 4
	pacedCost  = 100 * time.Microsecond
)

// reconnectIdle asks children that went IDLE to reconnect.
func (b *wlrBalancer) reconnectIdle() {
	b.mu.Lock()
	idle := b.idle
	b.idle = nil
	b.mu.Unlock()
	for _, c := range idle {
		c.exitIdle()
	}
}

// publish decides and hands grpc-go the resulting picker. It returns the
// engine's next decision time; ok is false before the first config or
// after Close.
func (b *wlrBalancer) publish() (next time.Time, ok bool) {
	b.mu.Lock()
	if b.closed || b.set == nil {
		b.mu.Unlock()
		return time.Time{}, false
	}
	var st grpcbalancer.State
	d := b.set.Decide()
	switch {
	case len(d.Entries) > 0:
		children := make([]grpcbalancer.Picker, len(d.Records))
		for i, r := range d.Records {
			children[i] = r.Value.(*child).state.Picker
		}
		st = grpcbalancer.State{
			ConnectivityState: connectivity.Ready,
			Picker:            b.obs.picker(newGRPCPicker(picker.New(b.cfg.PickerConfig, d.Entries), children, b.cfg.Breaker.FailureMask())),
		}
		next = d.Next
	case len(b.children) == 0:
		err := errNoEndpoints
		if b.resolverErr != nil {
			err = fmt.Errorf("%w: resolver error: %v", errNoEndpoints, b.resolverErr)
		}
		st = grpcbalancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            &errPicker{err: fmt.Errorf("%s: %w", Name, err)},
		}
	case d.Wait:
		// Connecting, or connected and waiting for the first probe:
		// RPCs wait.
		st = grpcbalancer.State{
			ConnectivityState: connectivity.Connecting,
			Picker:            &errPicker{err: grpcbalancer.ErrNoSubConnAvailable},
		}
		next = d.Next
	default:
		// Nothing usable and nothing pending: fail RPCs with the reason.
		// A plain error (not a status) fails ordinary RPCs with
		// UNAVAILABLE and keeps wait-for-ready RPCs waiting until the
		// next decision (d.Next: the first open period to end).
		err := fmt.Errorf("%s: %w", Name, d.Err)
		if cerr := b.connErrorLocked(); cerr != nil {
			err = fmt.Errorf("%w; last connection error: %v", err, cerr)
		}
		st = grpcbalancer.State{
			ConnectivityState: connectivity.TransientFailure,
			Picker:            b.obs.failing(&errPicker{err: err}),
		}
		next = d.Next
	}
	b.mu.Unlock()
	b.obs.decided(&d)
	b.cc.UpdateState(st)
	b.published.Store(d.Seq)
	return next, true
}

// connErrorLocked returns the error of a child in transient failure (its
// pick_first picker says why it cannot connect), or nil. Caller must hold
// b.mu.
func (b *wlrBalancer) connErrorLocked() error {
	for _, c := range b.children {
		if c.state.ConnectivityState == connectivity.TransientFailure && c.state.Picker != nil {
			if _, err := c.state.Picker.Pick(grpcbalancer.PickInfo{}); err != nil {
				return err
			}
		}
	}
	return nil
}
