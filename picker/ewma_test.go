package picker

import (
	"testing"
	"time"
)

// TestEWMA_LowerBoundOnlyRaises: a request cut short by a deadline or a
// cancellation says the endpoint's latency is at least its duration. Such a
// sample below the estimate must leave it alone (blending it in would make
// an endpoint whose callers give up quickly look fast); one above raises it
// like any sample.
func TestEWMA_LowerBoundOnlyRaises(t *testing.T) {
	tau := float64(time.Second)
	now := int64(time.Hour)
	var e peakEWMA
	e.observe(float64(100*time.Millisecond), now, tau, false)
	before := e.value(now, tau)
	e.observe(float64(time.Millisecond), now+int64(time.Second), tau, true)
	if got, want := e.value(now+int64(time.Second), tau), before*decayWeight(int64(time.Second), tau); got != want {
		t.Fatalf("estimate after a 1ms lower bound below it: %v, want only the decay to %v", time.Duration(got), time.Duration(want))
	}
	var timed peakEWMA
	timed.observe(float64(100*time.Millisecond), now, tau, false)
	timed.observe(float64(time.Millisecond), now+int64(time.Second), tau, false)
	if timed.value(now+int64(time.Second), tau) == e.value(now+int64(time.Second), tau) {
		t.Fatal("a timed sample and a lower bound below the estimate had the same effect")
	}
	low := e.value(now+int64(time.Second), tau)
	e.observe(float64(500*time.Millisecond), now+int64(time.Second), tau, true)
	if got := e.value(now+int64(time.Second), tau); got <= low {
		t.Fatalf("a 500ms lower bound above the estimate %v did not raise it (%v)", time.Duration(low), time.Duration(got))
	}
}
