package resolver

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// The source toolkit: what every Source that polls or watches a registry
// needs around its requests, written once (the built-in sources, the etcd
// and consul modules, and your own Source use it). None of it is
// required: a Source only has to honour the Source contract.

// Clock is the time source of a Loop and of Sleep: nil means the real
// clock. Tests pass a fake one to drive pauses without sleeping.
type Clock = clock.Clock

// Timer is a timer of a Clock.
type Timer = clock.Timer

// Backoff is an exponential back-off with "equal jitter": the bound b
// doubles from Min to Max with each failure, and each pause is drawn from
// [b/2, b), so that clients that failed together retry apart yet never
// sooner than half the bound. The zero value is not useful: set Min and
// Max (Max < Min counts as Min). Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	// Rand returns a number in [0, 1); nil means math/rand/v2.Float64.
	// Tests pin it.
	Rand func() float64

	cur time.Duration
}

// Next returns the pause before the next retry and doubles the bound.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(2*b.cur, max(b.Max, b.Min))
	}
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return b.cur/2 + time.Duration(r()*float64(b.cur/2))
}

// Reset starts the next failure from Min again; call it on a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits for d on clk (nil: the real clock) or until ctx is done, and
// reports whether the whole wait elapsed.
func Sleep(ctx context.Context, clk Clock, d time.Duration) bool {
	return clock.Sleep(ctx, clk, d)
}

// Go runs run on a goroutine of its own with a context that ends when ctx
// does or stop is called. stop (idempotent) returns once run has returned:
// it is the stop function Source.Watch returns.
func Go(ctx context.Context, run func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

// Loop is a source's watch loop: it runs one attempt (a query, a list, a
// watch until it breaks) after another until its context ends. After a
// failed attempt it waits Backoff.Next(); a successful one resets the
// back-off.
type Loop struct {
	Backoff Backoff
	// Interval, if set, returns the least time between the starts of two
	// attempts, whatever their outcome (drawn anew each time, so it may be
	// jittered): a rate limit for registries that can answer at once.
	Interval func() time.Duration
	// Clock times the pauses; nil means the real clock.
	Clock Clock
}

// Start runs attempt again and again on a goroutine of its own, as
// described on Loop, until ctx is done or stop is called; stop (idempotent)
// returns once the goroutine has exited. attempt is always called on that
// goroutine, so it may use the Loop's Backoff (e.g. Reset it on progress
// within a long attempt).
func (l *Loop) Start(ctx context.Context, attempt func(context.Context) error) (stop func()) {
	clk := clock.OrReal(l.Clock)
	return Go(ctx, func(ctx context.Context) {
		for ctx.Err() == nil {
			start := clk.Now()
			err := attempt(ctx)
			if ctx.Err() != nil {
				return
			}
			var pause time.Duration
			if l.Interval != nil {
				pause = start.Add(l.Interval()).Sub(clk.Now())
			}
			if err != nil {
				pause = max(pause, l.Backoff.Next())
			} else {
				l.Backoff.Reset()
			}
			if pause > 0 && !Sleep(ctx, clk, pause) {
				return
			}
		}
	})
}

// ErrorOnce tells which errors of a failing source are news: the first
// one, and each whose text differs from the previous one. A success
// (Clear) ends the failure, so that the next error is news again. Sources
// report and log the news and only count the rest, which keeps a long
// outage from flooding the log. The zero value is ready; not safe for
// concurrent use.
type ErrorOnce struct {
	failing bool
	last    string
}

// New records err and reports whether it is news.
func (e *ErrorOnce) New(err error) bool {
	msg := err.Error()
	news := !e.failing || msg != e.last
	e.failing, e.last = true, msg
	return news
}

// Failing reports whether an error was recorded since the last Clear.
func (e *ErrorOnce) Failing() bool { return e.failing }

// Clear ends the failure, and reports whether there was one.
func (e *ErrorOnce) Clear() bool {
	was := e.failing
	e.failing, e.last = false, ""
	return was
}
