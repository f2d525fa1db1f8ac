package clocktest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

func TestFake_TimersFireInOrderWhenDue(t *testing.T) {
	f := New()
	t1 := f.NewTimer(2 * time.Second)
	fired := make(chan struct{})
	f.AfterFunc(time.Second, func() { close(fired) })
	f.Advance(999 * time.Millisecond)
	select {
	case <-t1.C():
		t.Fatal("timer fired early")
	case <-fired:
		t.Fatal("AfterFunc fired early")
	default:
	}
	f.Advance(time.Millisecond)
	<-fired
	f.Advance(time.Second)
	select {
	case <-t1.C():
	default:
		t.Fatal("timer did not fire at its time")
	}
	if n := f.Timers(); n != 0 {
		t.Fatalf("Timers() = %d after all fired, want 0", n)
	}
}

func TestFake_StopAndReset(t *testing.T) {
	f := New()
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of an active timer returned false")
	}
	f.Advance(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer returned true")
	}
	f.Advance(time.Second)
	select {
	case <-tm.C():
	default:
		t.Fatal("reset timer did not fire")
	}
}

func TestWithTimeout_FakeDeadline(t *testing.T) {
	f := New()
	ctx, cancel := clock.WithTimeout(context.Background(), f, time.Second)
	defer cancel()
	if ctx.Err() != nil {
		t.Fatal("context done before its deadline")
	}
	f.Advance(time.Second)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not done after its deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("ctx.Err() = %v, want DeadlineExceeded", ctx.Err())
	}
}

func TestSleep_StopsOnContext(t *testing.T) {
	f := New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- clock.Sleep(ctx, f, time.Hour) }()
	f.WaitTimers(context.Background(), 1)
	cancel()
	if <-done {
		t.Fatal("Sleep reported a full wait after cancel")
	}
	go func() { done <- clock.Sleep(context.Background(), f, time.Minute) }()
	f.WaitTimers(context.Background(), 1)
	f.Advance(time.Minute)
	if !<-done {
		t.Fatal("Sleep did not report the full wait")
	}
}

func TestFake_StopThenResetListedOnce(t *testing.T) {
	f := New()
	tm := f.NewTimer(time.Second)
	tm.Stop()
	tm.Reset(time.Second)
	if n := f.Timers(); n != 1 {
		t.Fatalf("Timers() = %d after Stop and Reset of one timer, want 1", n)
	}
}
