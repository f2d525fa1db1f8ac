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
	// Hold every request: with idle remotes (cost 1), a local endpoint
	// takes requests until it has 3 in flight (cost 4 > 3 x 1), then
	// remotes take them until local ones are no longer costlier.
	held := 0
	for range 9 {
		if idx, _ := pickIndex(t, p, es); idx < 3 {
			held++
		}
	}
	for i := range 3 {
		if got := es[i].Endpoint.InFlight(); got < 2 || got > 3 {
			t.Fatalf("local endpoint %d has %d in flight after 9 held requests, want 2-3 (the band)", i, got)
		}
	}
	remote := 0
	for range 600 {
		if idx, _ := pickIndex(t, p, es); idx >= 3 {
			remote++
		}
	}
	// Beyond the band the zone and the remotes grow together: local
	// (n+1) stays within [3, 3 x 2] of remote (m+1) on average.
	var local, rem int64
	for i := range es {
		if i < 3 {
			local += es[i].Endpoint.InFlight()
		} else {
			rem += es[i].Endpoint.InFlight()
		}
	}
	lp, rp := float64(local)/3+1, float64(rem)/6+1
	if ratio := lp / rp; ratio < 2 || ratio > 4.5 {
		t.Fatalf("under held load: local %.1f, remote %.1f per endpoint (+1): ratio %.2f, want about %v", lp-1, rp-1, ratio, zoneBand)
	}
}

// TestZoned_LatencyCountsCrossZoneCost: a remote endpoint's estimate
// (which includes the cross-zone round trip) keeps requests local until
// the local zone is more than zoneBand times costlier.
func TestZoned_LatencyCountsCrossZoneCost(t *testing.T) {
	seeded(t, 74)
	now := int64(time.Hour)
	oldNow := nanotime
	nanotime = func() int64 { return now }
	t.Cleanup(func() { nanotime = oldNow })
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
	set(es, 30*ms, 7*ms) // the local zone is overloaded: 30 > 3 x 7
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
