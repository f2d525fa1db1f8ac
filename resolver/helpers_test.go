package resolver

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// defaultTestTimeout bounds every wait for an in-process event (grpc-go
// uses the same); a hung mutant then fails in 5s, not 10.
const defaultTestTimeout = 5 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a manually advanced clock. Timers fire when Advance moves the
// time past their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created int           // timers created so far
	changed chan struct{} // closed and replaced whenever a timer is created
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_000_000, 0), changed: make(chan struct{})}
}

type fakeTimer struct {
	c        chan time.Time
	deadline time.Time
	clk      *fakeClock
	stopped  bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) clockTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), deadline: c.now.Add(d), clk: c}
	c.created++
	if d <= 0 {
		t.c <- c.now
		t.stopped = true
	} else {
		c.timers = append(c.timers, t)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the time forward and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	live := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.deadline.After(c.now):
			t.stopped = true
			t.c <- c.now
		default:
			live = append(live, t)
		}
	}
	c.timers = live
}

// activeTimers returns the deadlines, relative to now, of the running timers.
func (c *fakeClock) activeTimers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		if !t.stopped {
			ds = append(ds, t.deadline.Sub(c.now))
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
	c.now = now
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
