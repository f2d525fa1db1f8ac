package healthprobe

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// FakeClock is the clock.Clock a test injects into its probe loops (through
// its own producer builder: see Start): every wait the loop asks for and
// every probe's timeout is handed to the test, and fires only when the test
// fires it, so a slow machine cannot turn an answer into a timeout. The loop
// asks for a wait only after it has sent a probe and delivered its verdict,
// so Next doubles as the test's synchronisation point: when it returns, the
// loop is parked and every onChange call for the probes so far has
// returned. Now is a clocktest.Fake's, which never moves.
//
// It is not process-wide: loops started by other tests, or through the
// package's Start, do not see it.
type FakeClock struct {
	*clocktest.Fake
	waits     chan *FakeWait
	deadlines chan *FakeDeadline
	rand      atomic.Pointer[func() float64]
	builder   *producerBuilder
}

var _ clock.Clock = (*FakeClock)(nil)

// FakeWait is one wait the loop asked for.
type FakeWait struct {
	// D is the duration the loop asked to wait.
	D  time.Duration
	ch chan time.Time
}

// Fire ends the wait, as if D had passed. Firing twice, or firing a wait
// the loop abandoned, is harmless.
func (w *FakeWait) Fire() {
	select {
	case w.ch <- time.Time{}:
	default:
	}
}

func (w *FakeWait) C() <-chan time.Time      { return w.ch }
func (w *FakeWait) Stop() bool               { return true }
func (w *FakeWait) Reset(time.Duration) bool { panic("FakeWait: Reset is not used by the loop") }

// UseFakeClock returns a FakeClock whose random draws for the jitter always
// return r (in [0, 1)).
func UseFakeClock(t testing.TB, r float64) *FakeClock {
	t.Helper()
	// Buffers far larger than any test's probe count: the loop never
	// blocks on them, and tests that ignore deadlines need not drain them.
	c := &FakeClock{Fake: clocktest.New(), waits: make(chan *FakeWait, 1000), deadlines: make(chan *FakeDeadline, 1000)}
	c.SetRand(func() float64 { return r })
	c.builder = &producerBuilder{opts: probe.Options{Clock: c, Rand: func() float64 { return (*c.rand.Load())() }}}
	return c
}

// SetRand replaces the loop's random draws.
func (c *FakeClock) SetRand(f func() float64) { c.rand.Store(&f) }

// NewTimer hands the wait to the test.
func (c *FakeClock) NewTimer(d time.Duration) clock.Timer {
	w := &FakeWait{D: d, ch: make(chan time.Time, 1)}
	c.waits <- w
	return w
}

// AfterFunc is how clock.WithTimeout times a probe: the test fires it.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	fd := &FakeDeadline{D: d, f: f}
	c.deadlines <- fd
	return fd
}

// Start is healthprobe.Start on this clock. Starts on one clock share the
// SubConn's loop as Starts through the package's Start do.
func (c *FakeClock) Start(sc balancer.SubConn, cfg GRPCConfig, onChange func(healthy bool, reason string)) (stop func()) {
	return start(c.builder, sc, cfg, onChange, nil)
}

// StartWithObserver is healthprobe.StartWithObserver on this clock.
func (c *FakeClock) StartWithObserver(sc balancer.SubConn, cfg GRPCConfig, onChange func(healthy bool, reason string), observe func(Probe)) (stop func()) {
	return start(c.builder, sc, cfg, onChange, observe)
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

// Pending returns how many waits were asked for and not yet taken by Next.
func (c *FakeClock) Pending() int { return len(c.waits) }

// Step fires w and returns the loop's next wait: one more probe has been
// sent, classified and delivered when it returns.
func (c *FakeClock) Step(t testing.TB, w *FakeWait) *FakeWait {
	t.Helper()
	w.Fire()
	return c.Next(t)
}

// LoopDone returns the channel that sc's probe loop (on this clock) closes
// when it exits. Call it while a Start on sc is active, so that it finds
// that loop.
func (c *FakeClock) LoopDone(sc balancer.SubConn) <-chan struct{} {
	pr, unref := sc.GetOrBuildProducer(c.builder)
	defer unref()
	return pr.(*producer).done()
}

// done returns the loop's Done, or nil before it started.
func (p *producer) done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loop == nil {
		return nil
	}
	return p.loop.Done()
}

// FakeDeadline is one probe's timeout. It carries no deadline the server
// could see, so the server never times the probe out on its own.
type FakeDeadline struct {
	// D is the timeout the probe asked for.
	D    time.Duration
	f    func()
	once sync.Once
}

// Fire expires the probe's timeout.
func (d *FakeDeadline) Fire() { d.once.Do(d.f) }

func (d *FakeDeadline) C() <-chan time.Time      { return nil }
func (d *FakeDeadline) Stop() bool               { return true }
func (d *FakeDeadline) Reset(time.Duration) bool { panic("FakeDeadline: Reset is not used") }

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
