package picker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// TestFinish_LatencyOffHandsBreakerTheCoarseClock: without the latency
// term no pick reads the clock, and each success of a gated request used
// to read it for the breaker's failure-ratio window (a third of such a
// pick's cost). Under load (the coarse clock running: here a fake one)
// Finish hands the breaker the coarse reading: its clock is not read.
func TestFinish_LatencyOffHandsBreakerTheCoarseClock(t *testing.T) {
	now := int64(time.Hour)
	fakeNanotime(t, &now)
	sampling(t, &now)
	var reads atomic.Int32
	br := breaker.New(breaker.DefaultConfig(), func() int64 { reads.Add(1); return now }, nil)
	ep := NewEndpoint("a", br)
	ep.ShareClock()
	cfg := DefaultConfig()
	cfg.LatencyAware = false
	p := New(cfg, []Entry{{Endpoint: ep, Weight: 1, Gated: true}})
	reads.Store(0)
	for range 100 {
		i, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		now += int64(time.Millisecond)
		p.Finish(i, tok, Outcome{Verdict: Success, Timing: Timed})
	}
	if n := reads.Load(); n != 0 {
		t.Fatalf("the breaker read its clock %d times for 100 successes, want 0", n)
	}
	if br.State() != breaker.Closed {
		t.Fatalf("breaker %v, want closed", br.State())
	}
}
