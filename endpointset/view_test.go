package endpointset

import (
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// TestView_ReportsDecisionBreakerProbeAndPanic drives a Set on a fake
// clock: four endpoints connected and usable, then a fifth added later
// (so it ramps), three breakers tripped: 2 of 5 usable is below 50 %. The View must carry the last
// decision (states, reasons, effective weight under slow start), each
// breaker's open-until on the engine's clock, the last probe, and panic
// mode with its reason.
func TestView_ReportsDecisionBreakerProbeAndPanic(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	bc := breaker.DefaultConfig()
	cfg := DefaultConfig()
	cfg.MaxEjectionPercent = 100
	s := New(cfg, Options{Breaker: &bc, Now: func() time.Time { return now }})
	spec := func(k string, w uint32) Spec { return Spec{Key: k, Addrs: []string{k}, Weight: w} }
	s.Update([]Spec{spec("a", 1), spec("b", 1), spec("c", 1), spec("e", 1)})
	for _, k := range []string{"a", "b", "c", "e"} {
		s.SetConn(s.Get(k), ConnReady)
	}
	s.Decide()
	s.Update([]Spec{spec("a", 1), spec("b", 1), spec("c", 1), spec("d", 4), spec("e", 1)})
	s.SetConn(s.Get("d"), ConnReady)
	probeAt := now
	s.ObserveProbe(s.Get("a"), ProbeResult{Outcome: "healthy", Reason: "SERVING", At: probeAt, Duration: time.Millisecond})
	now = now.Add(time.Second)
	for _, k := range []string{"b", "c", "e"} {
		br := s.Get(k).Hot.Breaker()
		for range bc.ConsecutiveFailures {
			tk, ok := br.Allow()
			if !ok {
				t.Fatalf("%s: breaker refused before tripping", k)
			}
			br.Record(tk, false)
		}
	}
	d := s.Decide()
	v := s.View(0)

	if v.Counts != d.Counts || !v.Panic {
		t.Fatalf("view counts %+v panic %t, want the decision's %+v and panic (2 of 5 usable)", v.Counts, v.Panic, d.Counts)
	}
	if !strings.Contains(v.PanicReason, "2 of 5 endpoints usable") || !strings.Contains(v.PanicReason, "3 ejected") {
		t.Errorf("panic reason %q, want the usable and ejected counts", v.PanicReason)
	}
	byKey := map[string]EndpointView{}
	for _, e := range v.Endpoints {
		byKey[e.Key] = e
	}
	if a := byKey["a"]; a.Probe == nil || a.Probe.Outcome != "healthy" || !a.Probe.At.Equal(probeAt) || a.State != Usable || a.EffectiveWeight != 1 {
		t.Errorf("a: %+v, want usable, weight 1, last probe healthy at %v", a, probeAt)
	}
	for _, k := range []string{"b", "c", "e"} {
		e := byKey[k]
		want := now.Add(time.Duration(bc.OpenDuration))
		if e.State != Ejected || e.Breaker == nil || e.Breaker.State != breaker.Open || !e.Breaker.OpenUntil.Equal(want) || e.Breaker.Trips != 1 {
			t.Errorf("%s: state %v, breaker %+v; want ejected, open until %v, trip 1", k, e.State, e.Breaker, want)
		}
	}
	// d joined 1s ago with a 10s window: Envoy's ramp gives
	// max(10%, 1s/10s) = 10% of its weight 4.
	if e := byKey["d"]; !e.Ramping || e.Weight != 4 || e.EffectiveWeight < 0.399 || e.EffectiveWeight > 0.401 {
		t.Errorf("d: ramping %t, weight %d, effective %g; want ramping, 4, 0.4", e.Ramping, e.Weight, e.EffectiveWeight)
	}
}
