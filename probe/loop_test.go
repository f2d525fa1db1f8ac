package probe

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
)

// The tests of this file drive a Loop with clocktest.Fake: time moves only
// when a test advances it, so every count is exact and no test depends on
// how fast the machine is.

const testTimeout = 5 * time.Second

// recClock is a clocktest.Fake that also tells the test every wait
// (NewTimer) and every probe timeout (AfterFunc, through clock.WithTimeout)
// the loop asks for. The loop arms its wait only after a probe's callbacks
// have returned, so a recorded wait is the test's sign that the loop is
// parked.
type recClock struct {
	*clocktest.Fake
	waits, timeouts chan time.Duration
}

func newRecClock() *recClock {
	return &recClock{Fake: clocktest.New(), waits: make(chan time.Duration, 100), timeouts: make(chan time.Duration, 100)}
}

func (c *recClock) NewTimer(d time.Duration) clock.Timer {
	t := c.Fake.NewTimer(d) // armed before the test hears of it
	c.waits <- d
	return t
}

func (c *recClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	t := c.Fake.AfterFunc(d, f)
	c.timeouts <- d
	return t
}

func (c *recClock) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(testTimeout):
		t.Fatal("the loop armed no wait")
		return 0
	}
}

// call is one Probe call, parked until the test answers it.
type call struct {
	ctx    context.Context
	answer chan Result
}

// scripted is a Prober whose every probe the test answers. A probe whose
// context ends first returns Error, as an I/O failure would.
type scripted struct {
	calls chan call
	n     atomic.Int32
}

func newScripted() *scripted { return &scripted{calls: make(chan call, 100)} }

func (s *scripted) Probe(ctx context.Context) Result {
	s.n.Add(1)
	c := call{ctx: ctx, answer: make(chan Result, 1)}
	s.calls <- c
	select {
	case r := <-c.answer:
		return r
	case <-ctx.Done():
		return Result{Outcome: Error, Reason: ctx.Err().Error()}
	}
}

func (s *scripted) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-s.calls:
		return c
	case <-time.After(testTimeout):
		t.Fatal("no probe")
		return call{}
	}
}

// recorder collects the callbacks in order.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func (r *recorder) callbacks() Callbacks {
	return Callbacks{
		Observe: func(p Probe) { r.add("probe %v: %s", p.Outcome, p.Reason) },
		Note:    func(res Result) { r.add("note %d: %s", res.Note, res.Reason) },
		Verdict: func(healthy bool, reason string) { r.add("verdict %t: %s", healthy, reason) },
	}
}

func testConfig() Config {
	c := DefaultConfig()
	c.Interval, c.Timeout, c.Jitter = config.Duration(time.Second), config.Duration(250*time.Millisecond), 0.2
	c.UnhealthyThreshold, c.HealthyThreshold = 2, 2
	return c
}

var (
	ok  = Result{Outcome: Healthy, Reason: "ok"}
	bad = Result{Outcome: Unhealthy, Reason: "bad"}
)

// TestLoop_FirstProbeAtOnceThenJitteredWaits: the first probe goes out
// before any time passes; each wait is armed only once the probe has ended
// and is Interval x (1 + Jitter x (2r-1)) for the draw r, one draw per
// wait; the next probe goes out when the wait ends.
func TestLoop_FirstProbeAtOnceThenJitteredWaits(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	draws := []float64{0, 0.5, math.Nextafter(1, 0), 0.25}
	var drawn atomic.Int32
	l := Start(p, testConfig(), rec.callbacks(), Options{Clock: clk, Rand: func() float64 {
		return draws[int(drawn.Add(1)-1)%len(draws)]
	}})
	defer l.Close()

	c := p.next(t) // no time has passed
	assert.Len(t, clk.waits, 0, "a wait armed before the probe ended")
	c.answer <- ok
	var waits []time.Duration
	for i := range draws {
		d := clk.nextWait(t)
		waits = append(waits, d)
		if i == 0 {
			assert.Equal(t, []string{"probe healthy: ok", "verdict true: ok"}, rec.take())
		}
		clk.Advance(d)
		c = p.next(t)
		assert.Len(t, clk.waits, 0, "a wait armed before the probe ended")
		c.answer <- ok
	}
	clk.nextWait(t)
	assert.Equal(t, 800*time.Millisecond, waits[0], "r=0: Interval*(1-Jitter)")
	assert.Equal(t, time.Second, waits[1], "r=0.5: Interval")
	assert.LessOrEqual(t, waits[2], 1200*time.Millisecond, "r<1: at most Interval*(1+Jitter)")
	assert.Greater(t, waits[2], 1200*time.Millisecond-time.Microsecond)
	assert.Equal(t, 900*time.Millisecond, waits[3], "r=0.25")
	assert.EqualValues(t, 5, drawn.Load(), "one draw per wait")
	assert.EqualValues(t, 5, p.n.Load())
}

// TestLoop_TimeoutIsTimeout: each probe gets a context that ends after
// Timeout on the loop's clock; a probe that fails because of it is a
// Timeout, named after the configured timeout, and counts as a failure.
// A prober that says Timeout itself keeps its reason.
func TestLoop_TimeoutIsTimeout(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	l := Start(p, testConfig(), rec.callbacks(), Options{Clock: clk, Rand: func() float64 { return 0.5 }})
	defer l.Close()

	c := p.next(t)
	c.answer <- ok
	clk.Advance(clk.nextWait(t))
	rec.take()

	c = p.next(t)
	assert.Equal(t, 250*time.Millisecond, <-clk.timeouts)
	clk.Advance(249 * time.Millisecond)
	assert.NoError(t, c.ctx.Err(), "the probe timed out early")
	clk.Advance(time.Millisecond) // the prober returns Error
	clk.Advance(clk.nextWait(t))
	assert.Equal(t, []string{"probe timeout: timeout after 250ms"}, rec.take())

	c = p.next(t)
	c.answer <- Result{Outcome: Timeout, Reason: "timeout after 250ms reading the body"}
	clk.nextWait(t)
	assert.Equal(t, []string{
		"probe timeout: timeout after 250ms reading the body",
		"verdict false: 2 consecutive failures: timeout after 250ms reading the body",
	}, rec.take())
}

// TestLoop_ThresholdsAndNotServing: the verdict follows the thresholds of
// the config, an explicit NotServing counts at once, and the verdict
// callback runs on the first probe and on every change only.
func TestLoop_ThresholdsAndNotServing(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	l := Start(p, testConfig(), Callbacks{Verdict: rec.callbacks().Verdict}, Options{Clock: clk, Rand: func() float64 { return 0.5 }})
	defer l.Close()
	step := func(r Result) []string {
		t.Helper()
		p.next(t).answer <- r
		clk.Advance(clk.nextWait(t))
		return rec.take()
	}
	notServing := Result{Outcome: NotServing, Reason: "NOT_SERVING"}
	assert.Equal(t, []string{"verdict true: ok"}, step(ok))
	assert.Empty(t, step(bad), "1 of 2 failures")
	assert.Equal(t, []string{"verdict false: 2 consecutive failures: bad"}, step(bad))
	assert.Empty(t, step(ok), "1 of 2 successes")
	assert.Equal(t, []string{"verdict true: 2 consecutive successes: ok"}, step(ok))
	assert.Equal(t, []string{"verdict false: 1 consecutive failures: NOT_SERVING"}, step(notServing), "NotServing counts at once")
	assert.Empty(t, step(notServing))
}

// TestLoop_NoteOncePerLoop: a result flagged with a Note is reported to
// Callbacks.Note the first time only, after its observation.
func TestLoop_NoteOncePerLoop(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	l := Start(p, testConfig(), rec.callbacks(), Options{Clock: clk})
	defer l.Close()
	assumed := Result{Outcome: Healthy, Reason: "404, treated as healthy", Note: AssumedHealthy}
	for i := range 3 {
		p.next(t).answer <- assumed
		d := clk.nextWait(t)
		got := rec.take()
		if i == 0 {
			assert.Equal(t, []string{"probe healthy: 404, treated as healthy", "note 1: 404, treated as healthy", "verdict true: 404, treated as healthy"}, got)
		} else {
			assert.Equal(t, []string{"probe healthy: 404, treated as healthy"}, got)
		}
		clk.Advance(d)
	}
}

// TestLoop_ObserveTimes: the observation carries the clock's time at the
// end of the probe and how long it took on that clock.
func TestLoop_ObserveTimes(t *testing.T) {
	clk, p := newRecClock(), newScripted()
	probes := make(chan Probe, 10)
	l := Start(p, testConfig(), Callbacks{Observe: func(pr Probe) { probes <- pr }}, Options{Clock: clk})
	defer l.Close()
	c := p.next(t)
	clk.Advance(100 * time.Millisecond)
	c.answer <- ok
	pr := <-probes
	assert.Equal(t, 100*time.Millisecond, pr.Duration)
	assert.Equal(t, clk.Now(), pr.At)
	assert.Equal(t, Probe{Outcome: Healthy, Reason: "ok", At: pr.At, Duration: pr.Duration}, pr)
}

// TestLoop_SetConfig: a new config during a wait restarts it with the new
// interval, counted from the change; during a probe, that probe finishes
// under the old thresholds and the wait after it uses the new interval,
// and is not restarted. An unchanged interval does not restart the wait.
func TestLoop_SetConfig(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	cfg := testConfig()
	cfg.Jitter = 0
	l := Start(p, cfg, Callbacks{Verdict: rec.callbacks().Verdict}, Options{Clock: clk})
	defer l.Close()
	p.next(t).answer <- ok
	assert.Equal(t, time.Second, clk.nextWait(t))

	clk.Advance(400 * time.Millisecond)
	slow := cfg
	slow.Interval = config.Duration(3 * time.Second)
	l.SetConfig(slow)
	assert.Equal(t, 3*time.Second, clk.nextWait(t), "the wait restarts with the new interval")
	clk.Advance(600 * time.Millisecond) // the old wait would have ended here
	assert.Equal(t, 1, clk.Timers(), "the old wait is still armed, or the new one fired")
	clk.Advance(2400 * time.Millisecond) // 3s after SetConfig
	c := p.next(t)

	// During a probe: thresholds of one would flip at this failure; the
	// probe started under thresholds of two.
	strict := slow
	strict.Interval, strict.UnhealthyThreshold = config.Duration(2*time.Second), 1
	l.SetConfig(strict)
	c.answer <- bad
	assert.Equal(t, 2*time.Second, clk.nextWait(t), "the wait after the probe uses the new interval")
	assert.Equal(t, []string{"verdict true: ok"}, rec.take(), "the probe in flight used the old thresholds")
	l.SetConfig(strict) // unchanged: no restart
	l.Refresh()         // a round trip through the loop's select
	clk.Advance(2 * time.Second)
	p.next(t).answer <- bad
	clk.nextWait(t)
	assert.Equal(t, []string{"verdict true: ok", "verdict false: 1 consecutive failures: bad"}, rec.take())
	assert.Len(t, clk.waits, 0, "a wait restarted for an unchanged config")
}

// TestLoop_Refresh: Refresh delivers the current verdict again from the
// loop's goroutine while it waits, and nothing before the first verdict.
func TestLoop_Refresh(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	l := Start(p, testConfig(), Callbacks{Verdict: rec.callbacks().Verdict}, Options{Clock: clk})
	defer l.Close()
	c := p.next(t)
	l.Refresh() // before the first verdict: the first probe delivers it
	c.answer <- bad
	clk.nextWait(t)
	assert.Equal(t, []string{"verdict false: bad"}, rec.take(), "one delivery answers a Refresh made before the first verdict")
	l.Refresh()
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.got) >= 1
	}, testTimeout, time.Millisecond)
	assert.Equal(t, []string{"verdict false: bad"}, rec.take())
	assert.Len(t, clk.waits, 0, "Refresh restarted the wait")
}
