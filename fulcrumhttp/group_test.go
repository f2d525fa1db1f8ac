package fulcrumhttp

import (
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// TestGroup_DecidesOnlyWhenDue: while an endpoint ramps up (slow start
// steps every 500ms of a 10s window), the host decides again at the steps,
// not in a loop: a moving next-decision time must only re-arm the timer.
func TestGroup_DecidesOnlyWhenDue(t *testing.T) {
	tr, err := NewTransport(map[string]string{"svc": "fulcrum://static/127.0.0.1:1"},
		WithConfig(`{"slowStart":{"window":"10s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	g := tr.groups["svc"]
	deadline := time.Now().Add(5 * time.Second)
	for g.snap.Load().wait {
		if time.Now().After(deadline) {
			t.Fatal("no first resolution")
		}
		time.Sleep(time.Millisecond)
	}
	// A second endpoint joins after the first resolution: it ramps.
	g.onUpdate([]endpointset.Spec{
		{Key: "127.0.0.1:1", Addrs: []string{"127.0.0.1:1"}, Weight: 1},
		{Key: "127.0.0.1:2", Addrs: []string{"127.0.0.1:2"}, Weight: 1},
	}, false)
	before := g.decisions.Load()
	time.Sleep(1200 * time.Millisecond) // two ramp steps
	if n := g.decisions.Load() - before; n < 1 || n > 6 {
		t.Errorf("%d decisions in 1.2s of a ramp stepping every 500ms, want 2 or 3 (at most 6)", n)
	}
	if next := g.drv.Next(); next.IsZero() {
		t.Error("no next decision time while an endpoint ramps")
	}
}
