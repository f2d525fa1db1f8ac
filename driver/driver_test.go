package driver

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait for something that must happen.
const testTimeout = 5 * time.Second

// quiet is how long a test watches for something that must not happen.
// It only makes a failure likelier to be seen: the tests pass on a machine
// of any speed.
const quiet = 20 * time.Millisecond

// recPub is a Publisher that records what the driver makes it do.
type recPub struct {
	in chan struct{} // buffered(1): Publish was entered

	mu    sync.Mutex
	calls int                    // Publish calls
	decs  []endpointset.Decision // decisions made, in order
	skip  bool                   // return false without deciding
	lie   bool                   // return true without deciding
	own   time.Time              // the adapter's own next time
	hold  chan struct{}          // if non-nil, wait for it after deciding
}

func newRecPub() *recPub { return &recPub{in: make(chan struct{}, 1)} }

func (p *recPub) Publish(decide func() endpointset.Decision) (time.Time, bool) {
	p.mu.Lock()
	p.calls++
	skip, lie, hold, own := p.skip, p.lie, p.hold, p.own
	p.mu.Unlock()
	select {
	case p.in <- struct{}{}:
	default:
	}
	switch {
	case skip:
		return time.Time{}, false
	case lie:
		return time.Time{}, true
	}
	dec := decide()
	if hold != nil {
		<-hold
	}
	p.mu.Lock()
	p.decs = append(p.decs, dec)
	p.mu.Unlock()
	return own, true
}

func (p *recPub) set(f func(p *recPub)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *recPub) counts() (calls, decisions int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, len(p.decs)
}

func (p *recPub) decisions() int { _, n := p.counts(); return n }

// lastSeq returns Decision.Seq of the last decision made (0: none).
func (p *recPub) lastSeq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.decs) == 0 {
		return 0
	}
	return p.decs[len(p.decs)-1].Seq
}

// waitFor polls cond until it holds, or fails the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// newSet returns a Set on clk with one connected endpoint per key, all of
// the first resolver update (so none ramps).
func newSet(clk *clocktest.Fake, opts endpointset.Options, keys ...string) *endpointset.Set {
	s, _ := newSetRecords(clk, opts, keys...)
	return s
}

// newSetRecords is newSet that also returns the records of keys.
func newSetRecords(clk *clocktest.Fake, opts endpointset.Options, keys ...string) (*endpointset.Set, []*endpointset.Record) {
	opts.Now = clk.Now
	s := endpointset.New(endpointset.DefaultConfig(), opts)
	return s, update(s, keys...)
}

// update gives s the endpoints keys (the whole set), reports every new one
// connected and returns the new ones' records.
func update(s *endpointset.Set, keys ...string) []*endpointset.Record {
	specs := make([]endpointset.Spec, len(keys))
	for i, k := range keys {
		specs[i] = endpointset.Spec{Key: k, Addrs: []string{k}, Weight: 1}
	}
	added, _ := s.Update(specs)
	for _, r := range added {
		s.SetConn(r, endpointset.ConnReady)
	}
	return added
}

// rampingSet returns a Set whose decisions have a Next: endpoint b joins
// after the first update, so it ramps (slow start, 10 s window, a step
// every 500 ms).
func rampingSet(clk *clocktest.Fake) *endpointset.Set {
	s := newSet(clk, endpointset.Options{}, "a")
	update(s, "a", "b")
	return s
}

const rampStep = 500 * time.Millisecond // window 10 s / 20

func startDriver(t *testing.T, s *endpointset.Set, p Publisher, clk *clocktest.Fake, obs *Observer) *Driver {
	t.Helper()
	d := New(s, p, Options{Clock: clk, Observer: obs})
	t.Cleanup(d.Close)
	return d
}

// entered waits until p's Publish has been called.
func entered(t *testing.T, p *recPub) {
	t.Helper()
	select {
	case <-p.in:
	case <-time.After(testTimeout):
		t.Fatal("timed out waiting for a Publish")
	}
}

// waitArmed waits until the driver's timer is armed on clk.
func waitArmed(t *testing.T, clk *clocktest.Fake) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if !clk.WaitTimers(ctx, 1) {
		t.Fatal("timed out waiting for the driver to arm its timer")
	}
}

// TestDriver_FirstDecisionAtOnce: New decides without any event.
func TestDriver_FirstDecisionAtOnce(t *testing.T) {
	clk := clocktest.New()
	s := newSet(clk, endpointset.Options{}, "a", "b")
	p := newRecPub()
	startDriver(t, s, p, clk, nil)
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	p.mu.Lock()
	dec := p.decs[0]
	p.mu.Unlock()
	if len(dec.Entries) != 2 || dec.Seq != 1 || !dec.Next.IsZero() {
		t.Errorf("first decision: %d entries, seq %d, Next %v; want 2 entries, seq 1, no Next", len(dec.Entries), dec.Seq, dec.Next)
	}
	// No Next: no timer, and no decision however long nothing happens.
	time.Sleep(quiet)
	if n := clk.Timers(); n != 0 {
		t.Errorf("%d timers armed after a decision without Next, want 0", n)
	}
	clk.Advance(time.Hour)
	time.Sleep(quiet)
	if n := p.decisions(); n != 1 {
		t.Errorf("%d decisions an hour after one without Next, want 1", n)
	}
}

// TestDriver_CoalescesBurst: Request never blocks, and 100 requests made
// while a decision is being published make one more decision, not 100.
func TestDriver_CoalescesBurst(t *testing.T) {
	clk := clocktest.New()
	s := newSet(clk, endpointset.Options{}, "a")
	p := newRecPub()
	hold := make(chan struct{})
	p.set(func(p *recPub) { p.hold = hold })
	d := startDriver(t, s, p, clk, nil)
	entered(t, p) // the first Publish is under way, held

	fired := make(chan struct{})
	go func() {
		defer close(fired)
		for range 100 {
			d.Request()
		}
	}()
	select {
	case <-fired:
	case <-time.After(testTimeout):
		t.Fatal("Request blocked while a Publish was under way")
	}
	p.set(func(p *recPub) { p.hold = nil })
	close(hold)
	waitFor(t, "the decision the burst asked for", func() bool { return p.decisions() >= 2 })
	time.Sleep(quiet)
	d.Close()
	if calls, n := p.counts(); n != 2 || calls != 2 {
		t.Errorf("%d Publish calls, %d decisions for the first decision plus a burst of 100 requests; want 2, 2", calls, n)
	}
	// The driver is closed: the next decision's number says how many it
	// made.
	if seq := s.Decide().Seq; seq != 3 {
		t.Errorf("the decision after Close is number %d, want 3 (2 by the driver)", seq)
	}
}

// TestDriver_TimerFiresAtNext: with no event, the driver decides again
// exactly at the decision's Next (here a slow-start step), not before.
func TestDriver_TimerFiresAtNext(t *testing.T) {
	clk := clocktest.New()
	start := clk.Now()
	s := rampingSet(clk)
	p := newRecPub()
	d := startDriver(t, s, p, clk, nil)
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	waitArmed(t, clk)
	if got, want := d.Next(), start.Add(rampStep); !got.Equal(want) {
		t.Fatalf("Next() = %v, want start + %v (the first slow-start step)", got.Sub(start), rampStep)
	}

	clk.Advance(rampStep - time.Nanosecond)
	if clk.Timers() == 0 {
		t.Fatal("the timer fired 1ns before Next")
	}
	time.Sleep(quiet)
	if n := p.decisions(); n != 1 {
		t.Fatalf("%d decisions 1ns before Next, want 1", n)
	}

	clk.Advance(time.Nanosecond)
	waitFor(t, "the decision at Next", func() bool { return p.decisions() == 2 })
	waitArmed(t, clk)
	if got, want := d.Next(), start.Add(2*rampStep); !got.Equal(want) {
		t.Errorf("Next() after the second decision = start + %v, want start + %v", got.Sub(start), 2*rampStep)
	}
	time.Sleep(quiet)
	if n := p.decisions(); n != 2 {
		t.Errorf("%d decisions at Next, want 2 in all", n)
	}
}

// TestDriver_PastNextDoesNotSpin: a Next not after the driver's now (here
// the engine's clock lags the driver's by 10 s, as after a clock step)
// makes one decision per minWait of the driver's clock, and none while
// that clock stands still.
func TestDriver_PastNextDoesNotSpin(t *testing.T) {
	setClk := clocktest.New()
	s := rampingSet(setClk) // Next: setClk's now + 500 ms
	clk := clocktest.New()
	clk.Advance(10 * time.Second)
	p := newRecPub()
	d := startDriver(t, s, p, clk, nil)
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	waitArmed(t, clk)
	if !d.Next().Before(clk.Now()) {
		t.Fatalf("Next() = %v, want a time before the driver's now %v", d.Next(), clk.Now())
	}
	time.Sleep(quiet)
	if n := p.decisions(); n != 1 {
		t.Fatalf("%d decisions with the clock standing still after a past Next, want 1", n)
	}

	// 20 ms of the driver's clock, in steps of a quarter of minWait; after
	// each step that fired the timer, wait for it to be armed again.
	const interval = 20 * time.Millisecond
	for range interval / (minWait / 4) {
		before := p.decisions()
		clk.Advance(minWait / 4)
		if clk.Timers() == 0 { // fired
			waitFor(t, "the decision at the timer", func() bool { return p.decisions() > before })
			waitArmed(t, clk)
		}
	}
	time.Sleep(quiet)
	if n, want := p.decisions()-1, int(interval/minWait); n != want {
		t.Errorf("%d decisions over %v of the driver's clock with a past Next, want %d (one per minWait %v)", n, interval, want, minWait)
	}
}

// rampingPanicSet returns a Set whose decisions are in panic mode (two
// of three endpoints fail their probes) and have a Next (the healthy one
// joined late and ramps).
func rampingPanicSet(clk *clocktest.Fake) *endpointset.Set {
	s, recs := newSetRecords(clk, endpointset.Options{Probing: true}, "a", "c")
	recs = append(recs, update(s, "a", "b", "c")...)
	for _, r := range recs {
		s.SetHealth(r, r.Key == "b", "NOT_SERVING")
	}
	return s
}

// TestDriver_PublishFalseRecordsNothing: a Publish that returns false, or
// that does not call decide, makes no decision: no engine decision, no
// Next, no timer, nothing observed.
func TestDriver_PublishFalseRecordsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode func(p *recPub)
	}{
		{"false", func(p *recPub) { p.skip = true }},
		{"true without deciding", func(p *recPub) { p.lie = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "driver-test:" + t.Name()
			clk := clocktest.New()
			s := rampingPanicSet(clk)
			mr := testutil.NewMetricsRecorder()
			obs := NewObserver(s, ObserverOptions{
				Transport: "http", Target: target, Recorder: metrics.GRPC(mr),
				Config: func() (any, time.Duration, bool) { return nil, 0, true },
			})
			defer obs.Close()
			p := newRecPub()
			p.set(tc.mode)
			d := New(s, p, Options{Clock: clk, Observer: obs})
			defer d.Close()
			entered(t, p)
			d.Request()
			waitFor(t, "the second Publish", func() bool { calls, _ := p.counts(); return calls >= 2 })
			time.Sleep(quiet)
			// Counts are those of the last decision: all zero before the
			// first (the Set has 3 endpoints).
			if c, _ := s.Counts(); c.Total != 0 {
				t.Fatalf("after Publish without a decision: the Set decided (counts %+v)", c)
			}
			if next, timers := d.Next(), clk.Timers(); !next.IsZero() || timers != 0 {
				t.Fatalf("after Publish without a decision: Next() %v, %d timers armed; want zero, 0", next, timers)
			}
			if n := mr.Count(metrics.PanicEntered.Name, target); n != 0 {
				t.Fatalf("panic_mode_entered = %d without a decision, want 0", n)
			}

			p.set(func(p *recPub) { p.skip, p.lie = false, false })
			d.Request()
			waitFor(t, "a decision once Publish decides", func() bool { return p.decisions() == 1 })
			waitArmed(t, clk)
			if seq, n := p.lastSeq(), mr.Count(metrics.PanicEntered.Name, target); seq != 1 || n != 1 {
				t.Errorf("decision number %d, panic_mode_entered %d after the first real decision (in panic mode); want 1, 1", seq, n)
			}
		})
	}
}

// TestDriver_CloseWaitsAndIsIdempotent: Close waits for a Publish under
// way, then for the loop; a second Close returns at once; Request after
// Close publishes nothing. goleak (TestMain) checks the loop is gone.
func TestDriver_CloseWaitsAndIsIdempotent(t *testing.T) {
	clk := clocktest.New()
	s := rampingSet(clk)
	p := newRecPub()
	hold := make(chan struct{})
	p.set(func(p *recPub) { p.hold = hold })
	d := New(s, p, Options{Clock: clk})
	entered(t, p)

	closed := make(chan struct{})
	go func() {
		d.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a Publish was under way")
	case <-time.After(quiet):
	}
	close(hold)
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close did not return after the Publish under way completed")
	}
	d.Close()
	calls, _ := p.counts()
	d.Request()
	clk.Advance(time.Hour)
	time.Sleep(quiet)
	if after, _ := p.counts(); after != calls {
		t.Errorf("%d Publish calls after Close, want 0", after-calls)
	}
}

// TestDriver_CloseWhileTimerArmed: Close of an idle driver waiting for
// its Next returns and stops the timer.
func TestDriver_CloseWhileTimerArmed(t *testing.T) {
	clk := clocktest.New()
	s := rampingSet(clk)
	p := newRecPub()
	d := New(s, p, Options{Clock: clk})
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	waitArmed(t, clk)
	d.Close()
	if n := clk.Timers(); n != 0 {
		t.Errorf("%d timers armed after Close, want 0", n)
	}
}

// TestDriver_AdapterNextWakesTimer: a time of the adapter's own returned
// by Publish (an HTTP hold ending) wakes the driver like Decision.Next.
func TestDriver_AdapterNextWakesTimer(t *testing.T) {
	clk := clocktest.New()
	s := newSet(clk, endpointset.Options{}, "a")
	p := newRecPub()
	p.set(func(p *recPub) { p.own = clk.Now().Add(time.Second) })
	d := startDriver(t, s, p, clk, nil)
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	if got, want := d.Next(), clk.Now().Add(time.Second); !got.Equal(want) {
		t.Fatalf("Next() = %v, want the adapter's %v", got, want)
	}
	p.set(func(p *recPub) { p.own = time.Time{} })
	clk.Advance(time.Second - time.Nanosecond)
	time.Sleep(quiet)
	if n := p.decisions(); n != 1 {
		t.Fatalf("%d decisions before the adapter's time, want 1", n)
	}
	clk.Advance(time.Nanosecond)
	waitFor(t, "a decision at the adapter's time", func() bool { return p.decisions() == 2 })
}
