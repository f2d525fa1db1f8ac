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
	rate := 1 / float64(time.Second)
	now := int64(time.Hour)
	var e peakEWMA
	setEstimate(&e, float64(100*time.Millisecond), now)
	before := e.value(now, rate)
	e.observe(float64(time.Millisecond), now+int64(time.Second), rate, true)
	if got, want := e.value(now+int64(time.Second), rate), before*decayWeight(int64(time.Second), rate); got != want {
		t.Fatalf("estimate after a 1ms lower bound below it: %v, want only the decay to %v", time.Duration(got), time.Duration(want))
	}
	var timed peakEWMA
	setEstimate(&timed, float64(100*time.Millisecond), now)
	timed.observe(float64(time.Millisecond), now+int64(time.Second), rate, false)
	if timed.value(now+int64(time.Second), rate) == e.value(now+int64(time.Second), rate) {
		t.Fatal("a timed sample and a lower bound below the estimate had the same effect")
	}
	low := e.value(now+int64(time.Second), rate)
	e.observe(float64(500*time.Millisecond), now+int64(time.Second), rate, true)
	if got := e.value(now+int64(time.Second), rate); got <= low {
		t.Fatalf("a 500ms lower bound above the estimate %v did not raise it (%v)", time.Duration(low), time.Duration(got))
	}
}

// TestEWMA_OneLongSampleAtMostDoubles: one request, however long (a stream
// whose lifetime grpc-go reports as its latency, issue 21 e), at most
// doubles the estimate, timed or as a lower bound; a sustained slowdown
// still shows: ten 50ms samples on a 5ms estimate take it past 2x within
// two samples and to 50ms.
func TestEWMA_OneLongSampleAtMostDoubles(t *testing.T) {
	rate := 1 / float64(3*time.Second)
	now := int64(time.Hour)
	for _, lower := range []bool{false, true} {
		var e peakEWMA
		setEstimate(&e, float64(5*time.Millisecond), now)
		e.observe(float64(time.Minute), now, rate, lower)
		if got := e.value(now, rate); got > float64(10*time.Millisecond) {
			t.Errorf("lowerBound=%v: estimate %v after one 60s sample on 5ms, want at most 10ms", lower, time.Duration(got))
		}
		var fresh peakEWMA
		fresh.observe(float64(time.Minute), now, rate, lower)
		if got := fresh.value(now, rate); got > float64(2*time.Millisecond) {
			t.Errorf("lowerBound=%v: estimate %v after one 60s first sample, want at most 2x the 1ms floor", lower, time.Duration(got))
		}
	}
	var e peakEWMA
	setEstimate(&e, float64(5*time.Millisecond), now)
	for i := range 10 {
		now += int64(time.Millisecond)
		e.observe(float64(50*time.Millisecond), now, rate, false)
		if got := e.value(now, rate); i == 1 && got <= float64(10*time.Millisecond) {
			t.Fatalf("estimate %v after two 50ms samples on 5ms, want above 2x", time.Duration(got))
		}
	}
	if got := e.value(now, rate); got < float64(45*time.Millisecond) {
		t.Fatalf("estimate %v after ten 50ms samples, want near 50ms", time.Duration(got))
	}
}
