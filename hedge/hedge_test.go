package hedge

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
)

const defaultTestTimeout = 5 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPolicy_DefaultsAndBounds(t *testing.T) {
	p := Policy{}.WithDefaults()
	want := Policy{MaxAttempts: 2, MinDelay: config.Duration(5 * time.Millisecond), MaxExtraLoadPercent: 5, MinHedgesPerSecond: 10}
	if p != want {
		t.Fatalf("Policy{}.WithDefaults() = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{MaxAttempts: 6}, "maxAttempts: 6, must be in [2, 5]"},
		{Policy{MaxAttempts: 1}, "maxAttempts: 1, must be in [2, 5]"},
		{Policy{Delay: config.Duration(2 * time.Minute)}, "delay: 2m0s, must be in [0s, 1m0s]"},
		{Policy{MaxExtraLoadPercent: 60}, "maxExtraLoadPercent: 60, must be in [0.1, 50]"},
		{Policy{MinHedgesPerSecond: -1}, "minHedgesPerSecond: -1, must be in [0, 1000]"},
	} {
		err := tc.p.WithDefaults().Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
}

// TestDelayer_PercentileOfBudget: the adaptive delay is the
// (100 - maxExtraLoad/4)th percentile of the samples (the 90th for 40 %)
// (within a bucket's 12.5 %), never below the floor, unknown below
// minSamples, and it forgets samples two windows old.
func TestDelayer_PercentileOfBudget(t *testing.T) {
	clk := clocktest.New()
	d := NewDelayer(Policy{MaxExtraLoadPercent: 40}.WithDefaults(), clk.Now)
	for i := range minSamples - 1 {
		d.Observe(time.Duration(i+1) * time.Millisecond)
	}
	if _, ok := d.Delay(); ok {
		t.Fatal("delay known below minSamples")
	}
	clk.Advance(recompute)
	// 1..1000 ms: the 90th percentile is 900 ms.
	for i := minSamples - 1; i < 1000; i++ {
		d.Observe(time.Duration(i+1) * time.Millisecond)
	}
	got, ok := d.Delay()
	if !ok || got < 900*time.Millisecond || got > 1013*time.Millisecond {
		t.Fatalf("delay = %v (%v), want the 90th percentile, 900ms within a bucket", got, ok)
	}
	if m := d.Median(); m < 500*time.Millisecond || m > 563*time.Millisecond {
		t.Fatalf("median = %v, want 500ms within a bucket", m)
	}
	// Two windows later, new fast samples alone count: the floor holds.
	clk.Advance(2 * window)
	for range 200 {
		d.Observe(100 * time.Microsecond)
	}
	clk.Advance(recompute)
	if got, ok := d.Delay(); !ok || got != 5*time.Millisecond {
		t.Fatalf("delay = %v (%v) after old samples expired, want the 5ms floor", got, ok)
	}
}

func TestBucketsCoverRange(t *testing.T) {
	prev := int64(0)
	for i := range histBuckets {
		u := upperOf(i)
		if u <= prev {
			t.Fatalf("bucket %d upper %d not above %d", i, u, prev)
		}
		if b := bucketOf(u - 1); b != i && i > 0 {
			t.Fatalf("bucketOf(upper(%d)-1) = %d", i, b)
		}
		prev = u
	}
}

type counter struct{ sent, won, refused atomic.Int64 }

func (c *counter) HedgeSent()    { c.sent.Add(1) }
func (c *counter) HedgeWon()     { c.won.Add(1) }
func (c *counter) HedgeRefused() { c.refused.Add(1) }

// TestDo_HedgeWinsLoserCancelled: on a fake clock, the first attempt
// blocks; no hedge goes before the delay; after it the hedge goes, wins,
// and the first attempt is marked cancelled before its context ends.
func TestDo_HedgeWinsLoserCancelled(t *testing.T) {
	clk := clocktest.New()
	h := New(Policy{Delay: config.Duration(50 * time.Millisecond)}, Options{Clock: clk})
	var c counter
	h.SetObserver(&c)
	started := make(chan int, MaxAttempts)
	var markedFirst atomic.Bool
	try := func(ctx context.Context, n int) string {
		started <- n
		if n == 0 {
			<-ctx.Done()
			a, _ := AttemptFrom(ctx)
			markedFirst.Store(a.Call.Ended(0))
			return "first"
		}
		return "hedge"
	}
	var discarded atomic.Int64
	done := make(chan string)
	go func() {
		r, release := Do(context.Background(), h, try, func(string) Judgement { return Judgement{Final: true, Timed: true} },
			func(string) { discarded.Add(1) })
		release()
		done <- r
	}()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if n := <-started; n != 0 {
		t.Fatalf("attempt %d first", n)
	}
	if !clk.WaitTimers(ctx, 1) {
		t.Fatal("no hedging timer armed")
	}
	clk.Advance(49 * time.Millisecond)
	select {
	case n := <-started:
		t.Fatalf("attempt %d started before the delay", n)
	case <-time.After(10 * time.Millisecond):
	}
	clk.Advance(time.Millisecond)
	if r := <-done; r != "hedge" {
		t.Fatalf("result %q, want the hedge's", r)
	}
	for discarded.Load() != 1 {
		if ctx.Err() != nil {
			t.Fatal("the loser's result was never discarded")
		}
		time.Sleep(time.Millisecond)
	}
	if !markedFirst.Load() {
		t.Error("the first attempt was not marked cancelled when its context ended")
	}
	if c.sent.Load() != 1 || c.won.Load() != 1 || c.refused.Load() != 0 {
		t.Errorf("sent %d won %d refused %d, want 1 1 0", c.sent.Load(), c.won.Load(), c.refused.Load())
	}
}

// samplesIn returns the number of samples the delayer holds in [lo, hi).
func (d *Delayer) samplesIn(lo, hi time.Duration) uint64 {
	n := uint64(0)
	for gi := range d.gens {
		for i := bucketOf(int64(lo)); i < bucketOf(int64(hi)); i++ {
			n += uint64(d.gens[gi].counts[i].Load())
		}
	}
	return n
}

// TestDo_OnlyTheAnswerIsSampled: a call whose hedge won adds one sample to
// the adaptive delay, the hedge's latency; the loser's duration (a lower
// bound above the delay, what a call stuck on a hung instance shows) is
// not sampled, so that a burst of rescued calls cannot raise the delay.
// On a fake clock: the first attempt blocks, the hedge goes at 50ms and
// answers 30ms later, when the loser has run for 80ms.
func TestDo_OnlyTheAnswerIsSampled(t *testing.T) {
	clk := clocktest.New()
	h := New(Policy{Delay: config.Duration(50 * time.Millisecond)}, Options{Clock: clk})
	hedgeStarted, answer := make(chan struct{}), make(chan struct{})
	try := func(ctx context.Context, n int) string {
		if n == 0 {
			<-ctx.Done()
			return "first"
		}
		close(hedgeStarted)
		<-answer
		return "hedge"
	}
	done := make(chan string)
	go func() {
		r, release := Do(context.Background(), h, try, func(string) Judgement { return Judgement{Final: true, Timed: true} },
			func(string) {})
		release()
		done <- r
	}()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if !clk.WaitTimers(ctx, 1) {
		t.Fatal("no hedging timer armed")
	}
	clk.Advance(50 * time.Millisecond)
	select {
	case <-hedgeStarted:
	case <-ctx.Done():
		t.Fatal("the hedge did not start after the delay")
	}
	clk.Advance(30 * time.Millisecond)
	close(answer)
	if r := <-done; r != "hedge" {
		t.Fatalf("result %q, want the hedge's", r)
	}
	total, winner := h.delay.samplesIn(0, time.Minute), h.delay.samplesIn(30*time.Millisecond, 34*time.Millisecond)
	if total != 1 || winner != 1 {
		t.Errorf("%d samples, %d in [30ms, 34ms); want only the hedge's 30ms", total, winner)
	}
}

// TestDo_NonFatalSendsNextAtOnce: a non-final result sends the next
// attempt without waiting for the delay (gRFC A6); when every attempt
// fails non-fatally, the last failure is the call's.
func TestDo_NonFatalSendsNextAtOnce(t *testing.T) {
	clk := clocktest.New() // never advanced: only non-fatal results send
	h := New(Policy{MaxAttempts: 3, Delay: config.Duration(time.Hour), MinHedgesPerSecond: 100}, Options{Clock: clk})
	var calls atomic.Int64
	try := func(_ context.Context, n int) error {
		calls.Add(1)
		return errors.New(strings.Repeat("x", n+1))
	}
	r, release := Do(context.Background(), h, try, func(error) Judgement { return Judgement{} }, func(error) {})
	release()
	if calls.Load() != 3 || r.Error() != "xxx" {
		t.Fatalf("%d attempts, result %v; want 3 and the last failure", calls.Load(), r)
	}
}

// TestDo_BudgetRefuses: with an empty budget no hedge goes and the refusal
// is counted.
func TestDo_BudgetRefuses(t *testing.T) {
	clk := clocktest.New()
	h := New(Policy{Delay: config.Duration(time.Millisecond), MinHedgesPerSecond: 0.0001}, Options{Clock: clk})
	h.budget = NewBudget(0, 0, clk.Now)
	var c counter
	h.SetObserver(&c)
	release := make(chan struct{})
	done := make(chan int)
	go func() {
		r, rel := Do(context.Background(), h, func(_ context.Context, n int) int { <-release; return n },
			func(int) Judgement { return Judgement{Final: true} }, func(int) {})
		rel()
		done <- r
	}()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if !clk.WaitTimers(ctx, 1) {
		t.Fatal("no timer")
	}
	clk.Advance(time.Millisecond)
	for c.refused.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("refusal not counted")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if r := <-done; r != 0 || c.sent.Load() != 0 {
		t.Fatalf("result of attempt %d, %d hedges sent; want 0, 0", r, c.sent.Load())
	}
}
