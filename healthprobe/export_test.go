package healthprobe

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
)

// FakeClock replaces the probe loop's timer (timeAfter), randomness
// (randFloat) and probe timeout (withTimeout) for one test. A probe's
// timeout expires only when the test fires it (FakeDeadline.Fire), so a slow
// machine cannot turn an answer into a timeout. The loop asks for a wait only after it has sent
// a probe and delivered its verdict, so Next doubles as the test's
// synchronisation point: when it returns, the loop is parked and every
// onChange call for the probes so far has returned. Time moves only when the
// test fires a wait.
//
// The clock is process-wide: a test using it must not run in parallel with
// another probe loop.
type FakeClock struct {
	waits     chan *FakeWait
	deadlines chan *FakeDeadline
}

// FakeWait is one wait the loop asked for.
type FakeWait struct {
	// D is the duration the loop asked to wait.
	D  time.Duration
	ch chan time.Time
}

// Fire ends the wait, as if D had passed. Firing twice is harmless.
func (w *FakeWait) Fire() {
	select {
	case w.ch <- time.Time{}:
	default:
	}
}

// UseFakeClock installs a FakeClock whose randFloat always returns r (in
// [0, 1)), and restores the real ones when t ends.
func UseFakeClock(t testing.TB, r float64) *FakeClock {
	t.Helper()
	// Buffers far larger than any test's probe count: the loop never
	// blocks on them, and tests that ignore deadlines need not drain them.
	c := &FakeClock{waits: make(chan *FakeWait, 1000), deadlines: make(chan *FakeDeadline, 1000)}
	oldAfter, oldRand, oldTimeout := timeAfter, randFloat, withTimeout
	timeAfter = func(d time.Duration) <-chan time.Time {
		w := &FakeWait{D: d, ch: make(chan time.Time, 1)}
		c.waits <- w
		return w.ch
	}
	randFloat = func() float64 { return r }
	withTimeout = func(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(parent)
		fd := &FakeDeadline{D: d, Context: ctx, cancel: cancel}
		c.deadlines <- fd
		return fd, cancel
	}
	t.Cleanup(func() { timeAfter, randFloat, withTimeout = oldAfter, oldRand, oldTimeout })
	return c
}

// fakeClockTimeout bounds every wait for the loop in Next: generous, for a
// loaded two-core machine; a correct loop parks within milliseconds.
const fakeClockTimeout = 10 * time.Second

// Next returns the next wait the loop asked for, waiting until it does. The
// probes before that wait are over, so it discards their deadlines.
func (c *FakeClock) Next(t testing.TB) *FakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		for len(c.deadlines) > 0 {
			<-c.deadlines
		}
		return w
	case <-time.After(fakeClockTimeout):
		t.Fatalf("the probe loop asked for no wait within %v", fakeClockTimeout)
		return nil
	}
}

// Waits returns the channel of waits the loop asked for, for tests that
// must select on it together with something else.
func (c *FakeClock) Waits() <-chan *FakeWait { return c.waits }

// Pending returns how many waits were asked for and not yet taken by Next.
func (c *FakeClock) Pending() int { return len(c.waits) }

// Step fires w and returns the loop's next wait: one more probe has been
// sent, classified and delivered when it returns.
func (c *FakeClock) Step(t testing.TB, w *FakeWait) *FakeWait {
	t.Helper()
	w.Fire()
	return c.Next(t)
}

// LoopDone returns the channel that sc's probe loop closes when it exits.
// Call it while a Start on sc is active, so that it finds that loop.
func LoopDone(sc balancer.SubConn) <-chan struct{} {
	pr, unref := sc.GetOrBuildProducer(producerBuilderSingleton)
	defer unref()
	return pr.(*producer).done
}

// FakeDeadline is one probe's timeout: a context that ends with
// context.DeadlineExceeded when the test fires it, or like its parent when
// the loop is cancelled. It carries no deadline the server could see, so the
// server never times the probe out on its own.
type FakeDeadline struct {
	// D is the timeout the probe asked for.
	D time.Duration
	context.Context
	cancel context.CancelFunc
	fired  atomic.Bool
}

// Fire expires the probe's timeout.
func (d *FakeDeadline) Fire() {
	d.fired.Store(true) // before cancel: Err must see it once Done is closed
	d.cancel()
}

// Err is context.DeadlineExceeded once fired.
func (d *FakeDeadline) Err() error {
	err := d.Context.Err()
	if err != nil && d.fired.Load() {
		return context.DeadlineExceeded
	}
	return err
}

// NextDeadline returns the timeout of the next probe, waiting until the loop
// starts it.
func (c *FakeClock) NextDeadline(t testing.TB) *FakeDeadline {
	t.Helper()
	select {
	case d := <-c.deadlines:
		return d
	case <-time.After(fakeClockTimeout):
		t.Fatalf("the probe loop started no probe within %v", fakeClockTimeout)
		return nil
	}
}
