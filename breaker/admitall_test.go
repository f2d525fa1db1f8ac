package breaker

import (
	"testing"
	"time"
)

// TestBreaker_AdmitAll (issue 21 defect c): while SetAdmitAll is on, a
// half-open breaker admits every call, not one at a time; the outcomes
// still count: HalfOpenRequests successes close it, any failure reopens
// it. Off again, trials go one at a time; an open period is never cut
// short.
func TestBreaker_AdmitAll(t *testing.T) {
	for _, fail := range []bool{false, true} {
		b, clk, _ := newTestBreaker(t, consecutiveOnly())
		b.SetAdmitAll(true)
		tripOpen(t, b)
		if _, ok := b.Allow(); ok || b.Admits() {
			t.Fatal("admit-all let a call through an open period")
		}
		clk.advance(5 * time.Second)
		var tks []Ticket
		for i := range 10 {
			if !b.Admits() {
				t.Fatalf("call %d: Admits false while half-open with admit-all", i)
			}
			tk, ok := b.Allow()
			if !ok {
				t.Fatalf("call %d of 10 refused while half-open with admit-all", i)
			}
			tks = append(tks, tk)
		}
		wantState(t, b, HalfOpen)
		if fail {
			b.Record(tks[0], false)
			wantState(t, b, Open)
			continue
		}
		b.Release(tks[0]) // no outcome: counts for nothing
		b.Record(tks[1], true)
		b.Record(tks[2], true)
		wantState(t, b, HalfOpen)
		b.Record(tks[3], true)
		wantState(t, b, Closed)
	}

	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	tripOpen(t, b)
	clk.advance(5 * time.Second)
	b.SetAdmitAll(true)
	first, _ := b.Allow()
	if _, ok := b.Allow(); !ok {
		t.Fatal("second call refused with admit-all")
	}
	b.SetAdmitAll(false)
	if _, ok := b.Allow(); ok {
		t.Fatal("admit-all off: a call admitted beside the trials in flight")
	}
	b.Record(first, true)
	if b.Admits() {
		t.Fatal("admit-all off: a trial admitted while another is in flight")
	}
}

// TestBreaker_SnapshotSince (issue 21 defect h): the snapshot tells when
// the current phase began; for an open breaker, when it tripped.
func TestBreaker_SnapshotSince(t *testing.T) {
	b, clk, _ := newTestBreaker(t, consecutiveOnly())
	clk.advance(time.Second)
	at := clk.now()
	tripOpen(t, b)
	if s := b.Snapshot(); s.State != Open || s.Since != at {
		t.Fatalf("snapshot %+v, want open since %d", s, at)
	}
}
