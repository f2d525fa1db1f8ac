// Package clock is Fulcrum's one time source: every timer, ticker and Now
// of the driver, the probe loop, the adapters and the resolver goes through
// a Clock, so that tests can replace it with clocktest.Fake and advance
// time instead of sleeping (bufbuild/httplb internal/clock does the same).
package clock

import (
	"context"
	"time"
)

// Clock is a source of time and timers.
type Clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
	NewTimer(d time.Duration) Timer
	// AfterFunc calls f in its own goroutine after d, unless stopped.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is the part of *time.Timer Fulcrum uses. C is nil for a timer
// made by AfterFunc.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Real returns the clock of the time package.
func Real() Clock { return realClock{} }

// OrReal returns c, or Real() when c is nil.
func OrReal(c Clock) Clock {
	if c == nil {
		return realClock{}
	}
	return c
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Since(t time.Time) time.Duration { return time.Since(t) }
func (realClock) NewTimer(d time.Duration) Timer  { return realTimer{time.NewTimer(d)} }
func (realClock) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

// IsReal reports whether c is the real clock (then callers may use the
// cheaper monotonic readings of the time package directly).
func IsReal(c Clock) bool { _, ok := c.(realClock); return ok || c == nil }

// NowFunc returns c.Now, or nil for the real clock: the engine
// (endpointset.Options.Now) then lets breakers read the cheaper monotonic
// clock alone.
func NowFunc(c Clock) func() time.Time {
	if IsReal(c) {
		return nil
	}
	return c.Now
}

// WithTimeout is context.WithTimeout on c: the context is cancelled with
// context.DeadlineExceeded when c reaches now+d.
func WithTimeout(ctx context.Context, c Clock, d time.Duration) (context.Context, context.CancelFunc) {
	if IsReal(c) {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := c.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	return &deadlineCtx{Context: ctx}, func() { t.Stop(); cancel(context.Canceled) }
}

// deadlineCtx reports the cause of its cancellation as its Err, so that
// errors.Is(ctx.Err(), context.DeadlineExceeded) holds on a fake clock
// as on the real one.
type deadlineCtx struct{ context.Context }

func (c *deadlineCtx) Err() error {
	if c.Context.Err() == nil {
		return nil
	}
	return context.Cause(c.Context)
}

// Sleep waits for d on c, or until ctx is done; it reports whether the
// whole wait elapsed.
func Sleep(ctx context.Context, c Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := OrReal(c).NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
