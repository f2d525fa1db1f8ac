// Package clocktest provides a fake clock.Clock that tests advance by hand.
package clocktest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// Fake is a clock.Clock whose time moves only by Advance. Timers
// fire (channel timers by a non-blocking send, AfterFunc timers in a new
// goroutine) when the time reaches them. Safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced when a timer is added
}

// New returns a Fake set to a fixed, arbitrary instant.
func New() *Fake {
	return &Fake{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

var _ clock.Clock = (*Fake)(nil)

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	return f.add(&fakeTimer{f: f, c: make(chan time.Time, 1)}, d)
}

func (f *Fake) AfterFunc(d time.Duration, fn func()) clock.Timer {
	return f.add(&fakeTimer{f: f, fn: fn}, d)
}

func (f *Fake) add(t *fakeTimer, d time.Duration) *fakeTimer {
	f.mu.Lock()
	t.at = f.now.Add(d)
	t.active = true
	f.timers = append(f.timers, t)
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if d <= 0 {
		f.Advance(0)
	}
	return t
}

// Advance moves the time forward by d and fires every timer that is due,
// in the order of their times.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	now := f.now
	var due []*fakeTimer
	keep := f.timers[:0]
	for _, t := range f.timers {
		switch {
		case !t.active:
		case !t.at.After(now):
			t.active = false
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	clear(f.timers[len(keep):])
	f.timers = keep
	f.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		if t.fn != nil {
			go t.fn()
		} else {
			select {
			case t.c <- now:
			default:
			}
		}
	}
}

// Timers returns the number of active timers.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if t.active {
			n++
		}
	}
	return n
}

// WaitTimers waits until at least n timers are active or ctx is done,
// and reports whether they are. Tests use it to know that a goroutine has
// armed its timer before they advance the time.
func (f *Fake) WaitTimers(ctx context.Context, n int) bool {
	for {
		f.mu.Lock()
		ch := f.changed
		f.mu.Unlock()
		if f.Timers() >= n {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-time.After(time.Millisecond):
			// Timers may also have been stopped and re-added.
		}
	}
}

type fakeTimer struct {
	f      *Fake
	c      chan time.Time
	fn     func()
	at     time.Time // guarded by f.mu
	active bool      // guarded by f.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	was := t.active
	t.at = t.f.now.Add(d)
	t.active = true
	// A stopped timer stays listed until the next Advance drops it.
	if !was && !slices.Contains(t.f.timers, t) {
		t.f.timers = append(t.f.timers, t)
	}
	close(t.f.changed)
	t.f.changed = make(chan struct{})
	t.f.mu.Unlock()
	if d <= 0 {
		t.f.Advance(0)
	}
	return was
}
