package picker

import (
	"math"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
)

// zonedPicker builds a picker over 3 local and 6 remote endpoints.
func zonedPicker(t *testing.T, cfg Config, spill float64) (*Picker, []Entry) {
	t.Helper()
	es := newEntries(1, 1, 1, 1, 1, 1, 1, 1, 1)
	p := NewZoned(cfg, es, Zones{Local: 3, Spill: spill})
	if z, ok := p.Zoned(); !ok || z.Local != 3 {
		t.Fatalf("Zoned() = %+v, %v; want 3 local", z, ok)
	}
	return p, es
}

// remoteShare picks n times, each request ending at once, and returns the
// share that went to remote entries (index >= 3).
func remoteShare(t *testing.T, p *Picker, es []Entry, n int) float64 {
	t.Helper()
	remote := 0
	for range n {
		idx, done := pickIndex(t, p, es)
		if idx >= 3 {
			remote++
		}
		done(Outcome{Verdict: Success}) // untimed: keeps the estimates
	}
	return float64(remote) / float64(n)
}

func TestZoned_HealthyIdleZoneKeepsEverything(t *testing.T) {
	seeded(t, 71)
	for _, latency := range []bool{false, true} {
		p, es := zonedPicker(t, Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: latency, LatencyDecay: config.Duration(3 * time.Second)}, 0)
		if got := remoteShare(t, p, es, 3000); got != 0 {
			t.Fatalf("latencyAware %v: %.2f%% of requests left a healthy idle zone, want 0", latency, 100*got)
		}
	}
}

func TestZoned_SpillIsTheHealthShortfall(t *testing.T) {
	seeded(t, 72)
	for _, spill := range []float64{0.1, 0.533, 1} {
		p, es := zonedPicker(t, Config{ChoiceCount: 2, ActiveRequestBias: 1}, spill)
		const n = 20000
		got := remoteShare(t, p, es, n)
		// Binomial: 4 standard deviations.
		if tol := 4 * math.Sqrt(spill*(1-spill)/n); math.Abs(got-spill) > tol+1e-9 {
			t.Fatalf("spill %v: remote share %.4f, want within %.4f", spill, got, tol)
		}
	}
}

// TestZoned_LoadSpillsProportionally: requests held in flight on the
// local zone push new ones out of it once the chosen local endpoint costs
// more than zoneBand times a remote one, and only as many as keep it there.
func TestZoned_LoadSpillsProportionally(t *testing.T) {
	seeded(t, 73)
	p, es := zonedPicker(t, Config{ChoiceCount: 2, ActiveRequestBias: 1}, 0)
	// Hold every request: with idle remotes (load 1), a local endpoint
	// takes requests until it has 4 in flight (load 5 > 4 x 1), then
	// remotes take them until local ones are no longer 4x as loaded.
	for range 12 {
		pickIndex(t, p, es)
	}
	for i := range 3 {
		if got := es[i].Endpoint.InFlight(); got < 3 || got > 4 {
			t.Fatalf("local endpoint %d has %d in flight after 12 held requests, want 3-4 (the band)", i, got)
		}
	}
	remote := 0
	for range 600 {
		if idx, _ := pickIndex(t, p, es); idx >= 3 {
			remote++
		}
	}
	// Beyond the band the zone and the remotes grow together: local
	// (n+1) stays about zoneBand times remote (m+1) on average.
	var local, rem int64
	for i := range es {
		if i < 3 {
			local += es[i].Endpoint.InFlight()
		} else {
			rem += es[i].Endpoint.InFlight()
		}
	}
	lp, rp := float64(local)/3+1, float64(rem)/6+1
	if ratio := lp / rp; ratio < zoneBand-1.5 || ratio > zoneBand+1.5 {
		t.Fatalf("under held load: local %.1f, remote %.1f per endpoint (+1): ratio %.2f, want about %v", lp-1, rp-1, ratio, zoneBand)
	}
}

// TestZoned_LatencyCountsCrossZoneCost: a remote endpoint's estimate
// (which includes the cross-zone round trip) keeps requests local while
// the local zone is within latencyTolerance of it; beyond, the ratio
// multiplies the local load.
func TestZoned_LatencyCountsCrossZoneCost(t *testing.T) {
	seeded(t, 74)
	now := int64(time.Hour)
	fixedClock(t, &now)
	decay := 3 * time.Second
	cfg := Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(decay)}
	set := func(es []Entry, local, remote time.Duration) {
		for i := range es {
			es[i].Endpoint.latency = peakEWMA{}
			d := remote
			if i < 3 {
				d = local
			}
			// A sample moves the estimate at most clipFactor-fold and
			// halfway: repeat until it has converged.
			for range 40 {
				es[i].Endpoint.latency.observe(float64(d), now, 1/float64(decay), false)
			}
			if got := es[i].Endpoint.latency.value(now, 1/float64(decay)); math.Abs(got-float64(d)) > 0.01*float64(d) {
				t.Fatalf("estimate %v, want %v", time.Duration(got), d)
			}
		}
	}
	ms := time.Millisecond
	p, es := zonedPicker(t, cfg, 0)
	set(es, 5*ms, 7*ms) // local 5 ms, remote 5 + 2 ms cross-zone
	if got := remoteShare(t, p, es, 2000); got != 0 {
		t.Fatalf("local 5ms, remote 7ms: %.2f%% left the zone, want 0", 100*got)
	}
	// Remote estimates are read undecayed: an hour later, an idle remote
	// zone does not look cheaper than it was.
	now += int64(time.Hour)
	set(es[:3], 5*ms, 0)
	if got := remoteShare(t, p, es, 2000); got != 0 {
		t.Fatalf("after an hour without remote samples: %.2f%% left the zone, want 0", 100*got)
	}
	p, es = zonedPicker(t, cfg, 0)
	set(es, 30*ms, 7*ms) // the local zone is overloaded: 30/7 = 4.3 > zoneBand
	if got := remoteShare(t, p, es, 2000); got < 0.5 {
		t.Fatalf("local 30ms, remote 7ms: %.2f%% left the zone, want most", 100*got)
	}
}

// TestZoned_RefusedLocalGoesRemote: when every local candidate's breaker
// refuses (trials in flight), the request goes to another zone rather
// than failing; a refusing remote side falls back to the local zone.
func TestZoned_RefusedLocalGoesRemote(t *testing.T) {
	seeded(t, 75)
	bcfg := breaker.DefaultConfig()
	bcfg.ConsecutiveFailures = 1
	es := newEntries(1, 1, 1, 1, 1, 1)
	for i := range 3 {
		es[i].Endpoint = NewEndpoint("local", breaker.New(bcfg, func() int64 { return int64(time.Hour) }, nil))
		es[i].Gated = true
		tk, _ := es[i].Endpoint.Breaker().Allow()
		es[i].Endpoint.Breaker().Record(tk, false) // open
	}
	p := NewZoned(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es, Zones{Local: 3})
	for i := range 100 {
		idx, done := pickIndex(t, p, es)
		if idx < 3 {
			t.Fatalf("pick %d went to local endpoint %d, whose breaker is open", i, idx)
		}
		done(Outcome{Verdict: Success})
	}
	p = NewZoned(Config{ChoiceCount: 2, ActiveRequestBias: 1}, append(es[3:6:6], es[:3]...), Zones{Local: 3, Spill: 1})
	// Everything spills, and every remote breaker is open.
	if idx, _, err := p.Select(); err != nil || idx >= 3 {
		t.Fatalf("Select with spill 1 and every remote breaker open = %d, %v; want a local endpoint", idx, err)
	}
}

func TestNewZoned_OneSideIsPlain(t *testing.T) {
	for _, local := range []int{0, 3} {
		if _, ok := NewZoned(Config{ChoiceCount: 2, ActiveRequestBias: 1}, newEntries(1, 1, 1), Zones{Local: local, Spill: 0.5}).Zoned(); ok {
			t.Fatalf("Local %d of 3: zone-aware, want a plain picker", local)
		}
	}
}

// TestZoned_LatencyNoiseDoesNotSpill: a busy local endpoint's peak-EWMA
// sits near its spikes (12 ms here against a remote's 7 ms, within
// latencyTolerance); with two requests in flight locally and none
// remotely, nothing leaves the zone. As a cost ((n+1) x latency: 36
// against 3 x 7), every such request left: 11 % of a healthy zone's
// requests in the three-zone scenario.
func TestZoned_LatencyNoiseDoesNotSpill(t *testing.T) {
	seeded(t, 76)
	now := int64(time.Hour)
	fixedClock(t, &now)
	decay := 3 * time.Second
	p, es := zonedPicker(t, Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(decay)}, 0)
	for i := range es {
		d := 7 * time.Millisecond
		if i < 3 {
			d = 12 * time.Millisecond
		}
		for range 40 {
			es[i].Endpoint.latency.observe(float64(d), now, 1/float64(decay), false)
		}
	}
	for i := range 3 {
		es[i].Endpoint.inFlight.picked()
		es[i].Endpoint.inFlight.picked()
	}
	if got := remoteShare(t, p, es, 2000); got != 0 {
		t.Fatalf("local 12ms with 2 in flight, remote 7ms idle: %.2f%% left the zone, want 0", 100*got)
	}
}

// TestBusier_ZoneLatencyNeedsTwoLocalEndpoints: a local endpoint's latency
// spike alone does not make the zone slow; two slow local endpoints do.
func TestBusier_ZoneLatencyNeedsTwoLocalEndpoints(t *testing.T) {
	now := int64(time.Hour)
	fixedClock(t, &now)
	decay := 3 * time.Second
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(decay)}, newEntries(1))
	entry := func(d time.Duration) *Entry {
		e := &newEntries(1)[0]
		for range 40 {
			e.Endpoint.latency.observe(float64(d), now, 1/float64(decay), false)
		}
		return e
	}
	ms := time.Millisecond
	spiky, fast, slow, remote := entry(40*ms), entry(5*ms), entry(40*ms), entry(7*ms)
	if p.busier(spiky, fast, remote, now) {
		t.Error("one local endpoint at 40ms (its peer at 5ms) against a remote 7ms: busier, want not")
	}
	if !p.busier(spiky, slow, remote, now) {
		t.Error("two local endpoints at 40ms against a remote 7ms: not busier, want busier (5.7x beyond the tolerance)")
	}
	if p.busier(spiky, spiky, remote, now) != p.busier(spiky, slow, remote, now) {
		t.Error("a drawn twice (one local endpoint) is its own peer")
	}
}
