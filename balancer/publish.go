package balancer

import (
	"fmt"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"

	"github.com/fulcrum-lb/fulcrum/endpointset"
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

// Publish is the driver's call (driver.Publisher): it asks children that
// went IDLE to reconnect, decides and hands grpc-go the resulting picker.
// ok is false before the first config and after Close.
func (b *wlrBalancer) Publish(decide func() endpointset.Decision) (next time.Time, ok bool) {
	b.reconnectIdle()
	b.mu.Lock()
	if b.closed || b.cfg == nil {
		b.mu.Unlock()
		return time.Time{}, false
	}
	var st grpcbalancer.State
	d := decide()
	switch {
	case len(d.Entries) > 0:
		children := make([]grpcbalancer.Picker, len(d.Records))
		ready := make([]*subConn, len(d.Records))
		for i, r := range d.Records {
			c := r.Value.(*child)
			children[i], ready[i] = c.state.Picker, c.readySC
		}
		st = grpcbalancer.State{
			ConnectivityState: connectivity.Ready,
			Picker:            b.observedPicker(newGRPCPicker(d.Picker(b.cfg.PickerConfig), children, ready, b.cfg.Breaker.FailureMask())),
		}
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
			Picker:            b.failingPicker(&errPicker{err: err}),
		}
	}
	b.mu.Unlock()
	b.cc.UpdateState(st)
	b.published.Store(d.Seq)
	return time.Time{}, true
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
