package balancer

import (
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// hotEndpoints returns the shared picker state of every endpoint, by
// address.
func hotEndpoints(b *wlrBalancer) map[string]*picker.Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]*picker.Endpoint{}
	for key, c := range b.children {
		m[key] = c.rec.Hot
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
	if set == nil {
		return false
	}
	_, p := set.Counts()
	return p
}

// fakeClock is a manually advanced clock for the balancer (the engine,
// its breakers and the driver's timer). Advancing it also asks the
// balancer for a decision, as an unrelated event would.
type fakeClock struct{ *clocktest.Fake }

func (c fakeClock) advance(b *wlrBalancer, d time.Duration) {
	c.Advance(d)
	b.requestDecision()
}

// useFakeClock makes the balancers built afterwards in this test run on a
// fake clock.
func useFakeClock(t *testing.T) fakeClock {
	c := fakeClock{clocktest.New()}
	testClock = c.Fake
	t.Cleanup(func() { testClock = nil })
	return c
}

// waitPublished waits until the balancer has handed grpc-go a picker from
// a decision made after this call began, as an unrelated event would
// cause: a state seen in results before it is then in force for every RPC
// picked afterwards (results reads the engine's last decision, which is
// made inside Publish before its picker reaches grpc-go). The driver
// decides at once on a request, on the fake clock too (it paces only on
// the real cost of a decision).
func waitPublished(t *testing.T, b *wlrBalancer) {
	t.Helper()
	before := b.published.Load()
	b.requestDecision()
	waitFor(t, "a new decision published", func() bool { return b.published.Load() > before })
}
