// Package driver runs Fulcrum's engine for one gRPC channel or one HTTP
// host: it is the only caller of endpointset.Set.Decide. Both adapters sit
// on it (as grpc-go's weightedroundrobin and leastrequest both sit on
// endpointsharding) and only translate their transport's events into Set
// calls and build pickers from decisions.
//
// What it owns, once for both transports:
//   - event coalescing: Request never blocks, and a burst of requests makes
//     one decision;
//   - pacing: a decision costs O(N); under a stream of events the loop
//     rests a multiple of that cost between decisions, so that it takes a
//     bounded share of a core;
//   - one timer for Decision.Next: nothing that changes with time (an open
//     period ending, a slow-start step, a hold ending) waits for an
//     unrelated event, and nothing spins on a time already past;
//   - the observer: metrics (package metrics) and the fulcrumz snapshot.
package driver

import (
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// Publisher is what an adapter gives the driver: how to publish a
// decision.
type Publisher interface {
	// Publish is called on the driver's goroutine after every batch of
	// events and at the engine's next decision time. It takes the
	// adapter's own lock (if any), calls decide exactly once — which makes
	// and records the engine's decision — builds the transport's picker
	// from it and hands it over. next, if not zero, is a time of the
	// adapter's own at which to decide again (an HTTP Retry-After hold
	// ending); the driver wakes at the earlier of it and Decision.Next.
	// ok false (closed, or not configured yet) means no decision was made.
	Publish(decide func() endpointset.Decision) (next time.Time, ok bool)
}

// Pacing of decisions: see run.
const (
	paceFactor = 4
	pacedCost  = 100 * time.Microsecond
	// minWait is the shortest the timer waits: the engine promises a Next
	// after now, and a Next not after now (a clock step, a bug) must not
	// turn the loop into a spin.
	minWait = time.Millisecond
)

// Driver drives one engine. Its methods are safe for concurrent use.
type Driver struct {
	// Read-only after New.
	set   *endpointset.Set
	pub   Publisher
	clk   clock.Clock
	obs   *Observer
	kick  chan struct{} // buffered(1): a decision is wanted
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when run returns
	close sync.Once

	mu   sync.Mutex
	next time.Time // the last decision's Next, for tests and fulcrumz
}

// Options configure a Driver.
type Options struct {
	// Clock is the time source of the timer and pacing; nil is the real
	// clock.
	Clock clock.Clock
	// Observer records decisions; nil records nothing.
	Observer *Observer
}

// New starts driving set: the first decision is made at once.
func New(set *endpointset.Set, pub Publisher, opts Options) *Driver {
	d := &Driver{
		set: set, pub: pub, clk: clock.OrReal(opts.Clock), obs: opts.Observer,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	d.kick <- struct{}{}
	go d.run()
	return d
}

// Request asks for a decision soon. It never blocks, so it may be called
// from RPC, prober and breaker goroutines (it is the engine's
// Options.OnChange); a burst of calls yields one decision.
func (d *Driver) Request() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Close stops the loop and waits for it. A Publish under way completes.
func (d *Driver) Close() {
	d.close.Do(func() {
		close(d.stop)
		<-d.done
	})
}

// Next returns when the driver will decide again without an event (zero:
// never).
func (d *Driver) Next() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.next
}

// decide is the one call of Set.Decide, handed to Publish.
func (d *Driver) decide(into *endpointset.Decision, called *bool) func() endpointset.Decision {
	return func() endpointset.Decision {
		*into = d.set.Decide()
		*called = true
		return *into
	}
}

// run makes decisions until Close: after every batch of events and at the
// last decision's Next, on one timer.
func (d *Driver) run() {
	defer close(d.done)
	timer := d.clk.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
		case <-timer.C():
		}
		start := time.Now()
		var dec endpointset.Decision
		called := false
		own, ok := d.pub.Publish(d.decide(&dec, &called))
		if !ok || !called {
			continue
		}
		if d.obs != nil {
			d.obs.decided(&dec)
		}
		next := earliest(dec.Next, own)
		d.mu.Lock()
		d.next = next
		d.mu.Unlock()
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(next.Sub(d.clk.Now()), minWait))
		}
		// A decision costs O(N) (about 0.5ms at 10 000 endpoints). Under
		// a stream of events, rest paceFactor times its cost before the
		// next, so that this goroutine takes at most 1/(paceFactor+1) of
		// a core and the events meanwhile make one decision: a change
		// waits at most paceFactor+1 decisions' time (a few ms at 10 000
		// endpoints, nothing below pacedCost). Measured on the real clock:
		// it is the cost of this goroutine's own work.
		if cost := time.Since(start); cost >= pacedCost {
			pace := time.NewTimer(paceFactor * cost)
			select {
			case <-d.stop:
				pace.Stop()
				return
			case <-pace.C:
			}
		}
	}
}

// earliest returns the earlier of two times, zero meaning never.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
