package resolver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBackoff_DoublesWithEqualJitterAndResets(t *testing.T) {
	r := 0.0
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return r }}
	var lows []time.Duration
	for range 6 {
		lows = append(lows, b.Next())
	}
	// Rand 0: the lowest pause, half the bound; the bound doubles to Max.
	assert.Equal(t, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}, lows)
	r = 0.999
	assert.Equal(t, 999500*time.Microsecond, b.Next(), "Rand near 1: just under the bound")
	b.Reset()
	r = 0.5
	assert.Equal(t, 75*time.Millisecond, b.Next(), "after Reset the bound is Min again")

	inverted := Backoff{Min: time.Second, Max: time.Millisecond, Rand: func() float64 { return 0 }}
	inverted.Next()
	assert.Equal(t, 500*time.Millisecond, inverted.Next(), "Max below Min counts as Min")

	var dflt Backoff
	dflt.Min, dflt.Max = time.Second, time.Second
	for range 100 {
		d := dflt.Next()
		require.True(t, d >= 500*time.Millisecond && d < time.Second, "%v outside [b/2, b)", d)
	}
}

func TestSleep(t *testing.T) {
	clk := newFakeClock()
	done := make(chan bool)
	go func() { done <- Sleep(context.Background(), clk, time.Minute) }()
	clk.waitTimers(t, 1)
	clk.Advance(time.Minute)
	assert.True(t, <-done, "the whole wait elapsed")

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(ctx, clk, time.Minute) }()
	clk.waitTimers(t, 1)
	cancel()
	assert.False(t, <-done, "ctx ended first")
	clk.waitTimers(t, 0)
	assert.True(t, Sleep(context.Background(), nil, 0), "no wait on the real clock")
}

// A failed attempt is followed by the back-off's pause, a success by none
// (or the Interval's rest); stop ends the loop during a pause and waits.
func TestLoop_BackoffIntervalAndStop(t *testing.T) {
	clk := newFakeClock()
	l := &Loop{Backoff: Backoff{Min: 2 * time.Second, Max: 8 * time.Second, Rand: func() float64 { return 0 }}, Clock: clk}
	results := make(chan error)
	attempts := make(chan int, 1)
	n := 0
	stop := l.Start(context.Background(), func(ctx context.Context) error {
		n++
		attempts <- n
		select {
		case err := <-results:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	fail := errors.New("down")
	require.Equal(t, 1, <-attempts)
	results <- fail
	assert.Equal(t, []time.Duration{time.Second}, clk.waitTimers(t, 1), "Min/2 after the first failure")
	clk.Advance(time.Second)
	require.Equal(t, 2, <-attempts)
	results <- fail
	assert.Equal(t, []time.Duration{2 * time.Second}, clk.waitTimers(t, 1), "doubled")
	clk.Advance(2 * time.Second)
	require.Equal(t, 3, <-attempts)
	results <- nil
	require.Equal(t, 4, <-attempts, "a success is followed by the next attempt at once")
	results <- fail
	assert.Equal(t, []time.Duration{time.Second}, clk.waitTimers(t, 1), "the success reset the back-off")
	stop()
	stop()
	assert.Empty(t, clk.activeTimers(), "stop ended the pause")

	// Interval: the next attempt starts Interval after the previous start.
	clk2 := newFakeClock()
	l2 := &Loop{Backoff: Backoff{Min: time.Second, Max: time.Second, Rand: func() float64 { return 0 }}, Interval: func() time.Duration { return 3 * time.Second }, Clock: clk2}
	starts := make(chan time.Time, 1)
	stop2 := l2.Start(context.Background(), func(ctx context.Context) error {
		starts <- clk2.Now()
		clk2.Advance(time.Second) // the attempt itself takes 1s
		return nil
	})
	t0 := <-starts
	assert.Equal(t, []time.Duration{2 * time.Second}, clk2.waitTimers(t, 1))
	clk2.Advance(2 * time.Second)
	assert.Equal(t, 3*time.Second, (<-starts).Sub(t0))
	stop2()
}

func TestErrorOnce(t *testing.T) {
	var e ErrorOnce
	a, b := errors.New("a"), errors.New("b")
	assert.False(t, e.Failing())
	assert.True(t, e.New(a), "the first error is news")
	assert.False(t, e.New(fmt.Errorf("%s", "a")), "the same text again is not")
	assert.True(t, e.Failing())
	assert.True(t, e.New(b), "a different error is")
	assert.True(t, e.New(a), "and so is the first one after it")
	assert.True(t, e.Clear())
	assert.False(t, e.Clear())
	assert.True(t, e.New(a), "after a success the same error is news again")
}
