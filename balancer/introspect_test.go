package balancer

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// hotEndpoints returns the shared picker state of every endpoint, by
// address.
func hotEndpoints(b *wlrBalancer) map[string]*picker.Endpoint {
	b.mu.Lock()
	set := b.set
	b.mu.Unlock()
	m := map[string]*picker.Endpoint{}
	if set == nil {
		return m
	}
	for _, r := range set.Records() {
		m[r.Key] = r.Hot
	}
	return m
}

func breakerStates(b *wlrBalancer) map[string]breaker.State {
	m := map[string]breaker.State{}
	for addr, h := range hotEndpoints(b) {
		if br := h.Breaker(); br != nil {
			m[addr] = br.State()
		}
	}
	return m
}

func results(b *wlrBalancer) map[string]endpointset.Result {
	b.mu.Lock()
	set := b.set
	b.mu.Unlock()
	if set == nil {
		return nil
	}
	return set.Results()
}

func panicking(b *wlrBalancer) bool {
	b.mu.Lock()
	set := b.set
	b.mu.Unlock()
	return set != nil && set.Panicking()
}

// fakeClock is a manually advanced clock for the engine (and so for the
// breakers). Advancing it asks the balancer for a decision, as the timer
// armed for the engine's next decision time would in real time.
type fakeClock struct {
	base time.Time
	off  atomic.Int64
}

func (c *fakeClock) now() time.Time { return c.base.Add(time.Duration(c.off.Load())) }

func (c *fakeClock) advance(b *wlrBalancer, d time.Duration) {
	c.off.Add(int64(d))
	b.requestDecision()
}

func useFakeClock(t *testing.T) *fakeClock {
	c := &fakeClock{base: time.Now()}
	nowFunc = c.now
	t.Cleanup(func() { nowFunc = nil })
	return c
}

// waitPublished waits until the balancer has handed grpc-go a picker from
// a decision at least as recent as the last one made now: a state seen in
// results is then in force for every RPC picked afterwards.
func waitPublished(t *testing.T, b *wlrBalancer) {
	t.Helper()
	b.mu.Lock()
	set := b.set
	b.mu.Unlock()
	seq := set.Seq()
	waitFor(t, "the decision published", func() bool { return b.published.Load() >= seq })
}
