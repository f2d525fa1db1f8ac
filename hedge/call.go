package hedge

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// MaxAttempts is the largest Policy.MaxAttempts.
const MaxAttempts = 5

// Call is the state of one hedged call that its attempts share with the
// balancer: where each attempt went, which attempts were
// cancelled because another won, and which the balancer refused to send
// because no other endpoint was available. Safe for concurrent use.
type Call struct {
	hedger *Hedger // read-only

	mu        sync.Mutex
	endpoints [MaxAttempts]*picker.Endpoint // where each attempt went (last pick)
	cancelled [MaxAttempts]bool
	refused   [MaxAttempts]bool
}

// Hedger returns the hedger of the call's channel or host.
func (c *Call) Hedger() *Hedger { return c.hedger }

// Except appends to skip the endpoints of the call's attempts other than
// attempt n: a hedge must not go where the call already waits, nor, after
// an attempt failed (a non-fatal status), where it failed (the retry
// rule). An attempt that succeeded ended the call.
func (c *Call) Except(n int, skip []*picker.Endpoint) []*picker.Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ep := range c.endpoints {
		if i != n && ep != nil {
			skip = append(skip, ep)
		}
	}
	return skip
}

// Sent records that attempt n went to ep (the balancer calls it on every
// pick of the attempt; a re-pick replaces the endpoint).
func (c *Call) Sent(n int, ep *picker.Endpoint) {
	c.mu.Lock()
	c.endpoints[n] = ep
	c.mu.Unlock()
}

// Ended reports whether attempt n, which left its endpoint, was cancelled
// because another attempt won: such an attempt says nothing against its
// endpoint.
func (c *Call) Ended(n int) (cancelledByWin bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cancelled[n]
}

// Refuse records that the balancer could not send attempt n anywhere the
// call is not already in flight.
func (c *Call) Refuse(n int) {
	c.mu.Lock()
	c.refused[n] = true
	c.mu.Unlock()
}

func (c *Call) wasRefused(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused[n]
}

// Cancel records that attempt n is being cancelled because another
// attempt won (Do calls it before cancelling the attempt's context).
func (c *Call) Cancel(n int) {
	c.mu.Lock()
	c.cancelled[n] = true
	c.mu.Unlock()
}

// Attempt is one attempt of a hedged call, carried by its context.
type Attempt struct {
	Call *Call
	// N is the attempt's number, 0 for the first.
	N int
}

type attemptKey struct{}

// inUse is set once any hedged call has run in the process: until then
// a balancer need not look for an Attempt in the pick's context, so
// hedging costs nothing where it is not used.
var inUse atomic.Bool

// InUse reports whether an Attempt may be in a pick's context: false
// until a hedged call has run in this process.
func InUse() bool { return inUse.Load() }

// WithAttempt returns ctx carrying attempt n of c.
func WithAttempt(ctx context.Context, c *Call, n int) context.Context {
	if !inUse.Load() {
		inUse.Store(true) // once: a store per call would contend
	}
	return context.WithValue(ctx, attemptKey{}, Attempt{Call: c, N: n})
}

// AttemptFrom returns the attempt ctx carries.
func AttemptFrom(ctx context.Context) (Attempt, bool) {
	a, ok := ctx.Value(attemptKey{}).(Attempt)
	return a, ok
}
