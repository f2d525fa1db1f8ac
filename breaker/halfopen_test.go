package breaker

import (
	"testing"
	"time"
)

// TestBreaker_StaleOutcomesIgnored: outcomes of calls admitted before a
// transition must not drive the state admitted after it.
func TestBreaker_StaleOutcomesIgnored(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	var slow []Ticket
	for range 6 {
		tk, _ := b.Allow()
		slow = append(slow, tk)
	}
	tripOpen(t, b)

	// Late outcomes of pre-trip calls while open: no effect.
	b.Record(slow[0], false)
	b.Record(slow[1], true)
	wantState(t, b, Open)

	clk.advance(5 * time.Second)
	trial, _ := b.Allow()
	// While half-open: a stale failure must not reopen, stale successes
	// must neither close nor count as the trial's success, which would let
	// a second trial in beside it.
	b.Record(slow[2], false)
	b.Record(slow[3], true)
	b.Record(slow[4], true)
	b.Record(slow[5], true)
	wantState(t, b, HalfOpen)
	if b.Admits() {
		t.Fatal("stale successes let a second trial in beside the first")
	}
	b.Record(trial, false)
	wantState(t, b, Open)

	// A trial of the previous half-open phase is stale too.
	clk.advance(10 * time.Second)
	for i := range 2 {
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("trial %d refused", i+1)
		}
		b.Record(tk, true)
	}
	t3, _ := b.Allow()
	b.Record(trial, true) // from the old half-open phase
	wantState(t, b, HalfOpen)
	if b.Admits() {
		t.Fatal("a stale success let a fourth trial in beside the third")
	}
	b.Record(t3, true)
	wantState(t, b, Closed)

	// And a closed-phase ticket from before the trip does not count toward
	// the consecutive failures of the new closed phase.
	for range 4 {
		call(t, b, false)
	}
	b.Record(slow[0], false)
	wantState(t, b, Closed)
	if n := len(rec.all()); n != 5 {
		t.Errorf("%d transitions, want 5: %+v", n, rec.all())
	}
	b.Record(Ticket{}, false) // the zero Ticket is ignored
	b.Release(Ticket{})
	wantState(t, b, Closed)
}

// TestBreaker_ReleaseReturnsTrialSlot: a released trial is no outcome; it
// lets the next trial in, and HalfOpenRequests recorded successes are still
// needed to close.
func TestBreaker_ReleaseReturnsTrialSlot(t *testing.T) {
	b, clk, rec := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)
	clk.advance(5 * time.Second)
	allow := func(what string) Ticket {
		t.Helper()
		tk, ok := b.Allow()
		if !ok {
			t.Fatalf("%s refused", what)
		}
		return tk
	}
	release := func(tk Ticket) {
		t.Helper()
		if b.Admits() {
			t.Fatal("Admits() = true with a trial in flight")
		}
		b.Release(tk)
		if !b.Admits() {
			t.Fatal("Admits() = false after the trial in flight was released")
		}
	}
	release(allow("first trial")) // the very first trial, which moved Open->HalfOpen
	b.Record(allow("first trial after a release"), true)
	release(allow("second trial"))
	release(allow("second trial after a release"))
	b.Record(allow("second trial after two releases"), true)
	wantState(t, b, HalfOpen) // three releases, two successes: not yet
	b.Record(allow("third trial"), true)
	wantState(t, b, Closed)
	wantTransition(t, rec, transition{HalfOpen, Closed, "3/3 trial RPCs succeeded"})

	// Release of a closed-phase ticket is harmless.
	tk, _ := b.Allow()
	b.Release(tk)
	call(t, b, true)
	wantState(t, b, Closed)
}

// TestBreaker_SecondTrialWaitsForFirst: while a trial is in flight no
// second one is admitted for as long as TrialTimeout (10s by default; what
// happens after it is TestBreaker_TrialTimeoutSupersedesStuckTrial); the first trial's success or release lets exactly one
// more in, and its failure reopens without one.
func TestBreaker_SecondTrialWaitsForFirst(t *testing.T) {
	for _, tc := range []struct {
		name      string
		finish    func(*Breaker, Ticket)
		wantState State
		wantNext  bool
	}{
		{"succeeds", func(b *Breaker, tk Ticket) { b.Record(tk, true) }, HalfOpen, true},
		{"released", func(b *Breaker, tk Ticket) { b.Release(tk) }, HalfOpen, true},
		{"fails", func(b *Breaker, tk Ticket) { b.Record(tk, false) }, Open, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, clk, _ := newTestBreaker(t, consecutiveOnly())
			tripOpen(t, b)
			clk.advance(5 * time.Second)
			first, ok := b.Allow()
			if !ok {
				t.Fatal("first trial refused")
			}
			for i := range 10 {
				if b.Admits() {
					t.Fatalf("Admits() = true with the first trial in flight, %v in", time.Duration(i)*time.Second)
				}
				if _, ok := b.Allow(); ok {
					t.Fatalf("second trial admitted with the first in flight, %v in", time.Duration(i)*time.Second)
				}
				if i < 9 {
					clk.advance(time.Second)
				}
			}
			wantState(t, b, HalfOpen)

			tc.finish(b, first)
			wantState(t, b, tc.wantState)
			if got := b.Admits(); got != tc.wantNext {
				t.Fatalf("Admits() = %v after the first trial finished, want %v", got, tc.wantNext)
			}
			second, ok := b.Allow()
			if ok != tc.wantNext {
				t.Fatalf("Allow() ok = %v after the first trial finished, want %v", ok, tc.wantNext)
			}
			if !ok {
				return
			}
			if _, ok := b.Allow(); ok {
				t.Fatal("third call admitted with the second trial in flight")
			}
			b.Record(second, true)
			wantState(t, b, HalfOpen)
		})
	}
}
