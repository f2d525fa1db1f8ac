package resolver

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
)

// defaultTestTimeout bounds every wait for an in-process event (grpc-go
// uses the same); a hung mutant then fails in 5s, not 10.
const defaultTestTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is clocktest.Fake (the project's one fake clock) plus what
// these tests ask of it: the remaining durations of the running timers, how
// many timers were created, and setting the time without firing timers.
type fakeClock struct {
	*clocktest.Fake
	mu      sync.Mutex
	offset  time.Duration // added to Fake's time by set
	timers  []*fakeTimer
	created int           // timers created so far
	changed chan struct{} // closed and replaced whenever a timer is created
}

func newFakeClock() *fakeClock {
	return &fakeClock{Fake: clocktest.New(), changed: make(chan struct{})}
}

// fakeTimer remembers the deadline (on Fake's time) of the timer it wraps.
// Fake fires a timer exactly when its time reaches the deadline, so a timer
// is running while it is neither stopped nor due.
type fakeTimer struct {
	clock.Timer
	clk      *fakeClock
	deadline time.Time // guarded by clk.mu
	stopped  bool      // guarded by clk.mu
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Fake.Now().Add(c.offset)
}

func (c *fakeClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	return c.track(d, func() clock.Timer { return c.Fake.NewTimer(d) })
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return c.track(d, func() clock.Timer { return c.Fake.AfterFunc(d, f) })
}

// track registers a timer only once Fake has it, so that a test that saw it
// running and advances the time does fire it. newTimer runs outside c.mu: a
// timer due at once fires inside it.
func (c *fakeClock) track(d time.Duration, newTimer func() clock.Timer) clock.Timer {
	t := &fakeTimer{Timer: newTimer(), clk: c}
	c.mu.Lock()
	t.deadline = c.Fake.Now().Add(d)
	c.timers = append(c.timers, t)
	c.created++
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	t.stopped = true
	t.clk.mu.Unlock()
	return t.Timer.Stop()
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.Timer.Reset(d) // first, as in track
	t.clk.mu.Lock()
	t.stopped, t.deadline = false, t.clk.Fake.Now().Add(d)
	close(t.clk.changed)
	t.clk.changed = make(chan struct{})
	t.clk.mu.Unlock()
	return was
}

// activeTimers returns the deadlines, relative to now, of the running timers.
func (c *fakeClock) activeTimers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.Fake.Now()
	var ds []time.Duration
	for _, t := range c.timers {
		if !t.stopped && t.deadline.After(now) {
			ds = append(ds, t.deadline.Sub(now))
		}
	}
	return ds
}

// waitTimers waits until exactly n timers are running and returns their
// remaining durations.
func (c *fakeClock) waitTimers(t *testing.T, n int) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if ds := c.activeTimers(); len(ds) == n {
			return ds
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond): // timers may also stop
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %d running timers; have %v", n, c.activeTimers())
		}
	}
}

// waitCreated waits until at least n timers were created: for a source that
// arms its next poll after each one, the moment the nth poll has finished.
func (c *fakeClock) waitCreated(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		ch, created := c.changed, c.created
		c.mu.Unlock()
		if created >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %d timers to be created; have %d", n, created)
		}
	}
}

// set moves the clock to now without firing timers (for tests that compare
// it with file times).
func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = now.Sub(c.Fake.Now())
}

// recorder is a real resolver.ClientConn that records what the resolver
// tells the channel, in order.
type recorder struct {
	mu      sync.Mutex
	events  []event
	handled int // Updates the resolver finished handling (builder.handled)
	notify  chan struct{}
}

type event struct {
	state resolver.State
	err   error // a ReportError
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// markHandled is the builder's handled hook.
func (r *recorder) markHandled() {
	r.mu.Lock()
	r.handled++
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// waitHandled waits until the resolver has handled at least n Updates. An
// update that changes nothing leaves no event, so this is how a test knows
// that it was handled rather than superseded by the next one in the queue.
func (r *recorder) waitHandled(t *testing.T, n int) {
	t.Helper()
	timer := time.NewTimer(defaultTestTimeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		h := r.handled
		r.mu.Unlock()
		if h >= n {
			return
		}
		select {
		case <-r.notify:
		case <-timer.C:
			t.Fatalf("timed out waiting for %d handled updates; have %d", n, h)
		}
	}
}

func (r *recorder) UpdateState(s resolver.State) error {
	r.add(event{state: s})
	return nil
}

func (r *recorder) ReportError(err error) { r.add(event{err: err}) }

func (r *recorder) NewAddress([]resolver.Address) {}

func (r *recorder) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

// waitEvents waits until at least n events were recorded and returns them.
func (r *recorder) waitEvents(t *testing.T, n int) []event {
	t.Helper()
	timer := time.NewTimer(defaultTestTimeout)
	defer timer.Stop()
	for {
		if evs := r.all(); len(evs) >= n {
			return evs
		}
		select {
		case <-r.notify:
		case <-timer.C:
			t.Fatalf("timed out waiting for %d events; have %+v", n, r.all())
		}
	}
}
