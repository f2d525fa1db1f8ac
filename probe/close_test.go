package probe

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of this file check how a Loop ends (Stop, Close) and the rule
// that keeps its owner from deadlocking (see Loop), with the fake clock of
// loop_test.go.

// TestLoop_CloseDuringProbe: Close cancels the probe in flight, waits for
// the goroutine, reports nothing about the cut-short probe and arms no
// wait. A second Close returns at once.
func TestLoop_CloseDuringProbe(t *testing.T) {
	clk, p, rec := newRecClock(), newScripted(), &recorder{}
	l := Start(p, testConfig(), rec.callbacks(), Options{Clock: clk})
	c := p.next(t)
	l.Close()
	assert.Error(t, c.ctx.Err(), "the probe's context outlived Close")
	select {
	case <-l.Done():
	default:
		t.Fatal("Close returned before the loop exited")
	}
	l.Close()
	assert.Empty(t, rec.take())
	assert.Len(t, clk.waits, 0)
}

// TestLoop_CloseWaitsForCallback: Close does not return while a callback
// runs, and no callback begins after it.
func TestLoop_CloseWaitsForCallback(t *testing.T) {
	clk, p := newRecClock(), newScripted()
	entered, unblock := make(chan struct{}), make(chan struct{})
	var after atomic.Int32
	l := Start(p, testConfig(), Callbacks{
		Observe: func(Probe) { close(entered); <-unblock },
		Verdict: func(bool, string) { after.Add(1) },
	}, Options{Clock: clk})
	p.next(t).answer <- ok
	<-entered
	closed := make(chan struct{})
	go func() { l.Close(); close(closed) }()
	// Close has stopped the loop and now waits for it.
	require.Eventually(t, func() bool { return l.ctx.Err() != nil }, testTimeout, time.Millisecond)
	select {
	case <-closed:
		t.Fatal("Close returned while a callback was running")
	case <-l.Done():
		t.Fatal("the loop exited while a callback was running")
	default:
	}
	close(unblock)
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close did not return after the callback did")
	}
	assert.Zero(t, after.Load(), "a callback began after Close")
	assert.Len(t, clk.waits, 0)
}

// TestLoop_StopWhileCallbackWaitsForLock: the owner's pattern: it holds
// the lock a callback takes, calls Stop (which never blocks), releases the
// lock, then waits for Done. That does not deadlock, and the callback
// that was waiting for the lock is the last one.
func TestLoop_StopWhileCallbackWaitsForLock(t *testing.T) {
	clk, p := newRecClock(), newScripted()
	var mu sync.Mutex
	var calls atomic.Int32
	lockedCb := func(bool, string) { mu.Lock(); calls.Add(1); mu.Unlock() }
	l := Start(p, testConfig(), Callbacks{
		Observe: func(Probe) { mu.Lock(); calls.Add(1); mu.Unlock() },
		Verdict: lockedCb,
	}, Options{Clock: clk})
	mu.Lock()
	p.next(t).answer <- ok // the loop goes on to Observe and waits for mu
	l.Stop()
	l.Stop() // idempotent
	mu.Unlock()
	select {
	case <-l.Done():
	case <-time.After(testTimeout):
		t.Fatal("the loop did not exit after Stop")
	}
	assert.LessOrEqual(t, calls.Load(), int32(1), "a callback began after Stop")
}

// TestLoop_StopFromCallback: a callback may Stop its own loop; nothing
// is delivered after that.
func TestLoop_StopFromCallback(t *testing.T) {
	clk, p := newRecClock(), newScripted()
	var verdicts atomic.Int32
	var l *Loop
	started := make(chan struct{})
	l = Start(p, testConfig(), Callbacks{
		Observe: func(Probe) { <-started; l.Stop() },
		Verdict: func(bool, string) { verdicts.Add(1) },
	}, Options{Clock: clk})
	close(started)
	p.next(t).answer <- ok
	select {
	case <-l.Done():
	case <-time.After(testTimeout):
		t.Fatal("the loop did not exit after a callback stopped it")
	}
	assert.Zero(t, verdicts.Load())
	l.Close()
}
