package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The zones scenario (issue 20): nine backends, three in each of zones
// a, b and c, a client in zone a, and five phases of equal length:
// healthy; two of the three local backends failing fast; healthy;
// the local zone overloaded; healthy.
const (
	// localZone is the client's zone, the `localZone` of fulcrum_zone.
	localZone = "a"
	// crossZoneDelay is added to the fixed service time of every backend
	// outside zone a: the round trip to another zone (1-2 ms each way in
	// the clouds), modelled on the server so that every latency the client
	// measures includes it. A local RPC takes 3ms + Exp(2ms) (mean 5ms),
	// a remote one 5ms + Exp(2ms) (mean 7ms).
	crossZoneDelay = 2 * time.Millisecond
	// overloadShare is the share of the offered load that zone a can
	// serve while it is overloaded: its three backends then serve one RPC
	// at a time each, slowed so that together they serve at most this
	// share of -rate (at 600 RPC/s: 6ms + Exp(4ms), mean 10ms, at most
	// ~100 RPC/s per backend, ~300 RPC/s for the zone).
	overloadShare = 0.5
	// overloadQueue is how many RPCs may wait for an overloaded backend's
	// slot; one more is refused at once with RESOURCE_EXHAUSTED, as a
	// server shedding load answers. It bounds the wait: at 600 RPC/s an
	// RPC waits at most ~4 x 10ms.
	overloadQueue = 4
	// recoveredPct is the local share (server-side, per bucket) at which
	// a healthy phase after a fault counts as back to local.
	recoveredPct = 97.0
)

// zonePhase is one phase of the zones scenario.
type zonePhase struct {
	name  string
	fault bool
}

var zonePhases = []zonePhase{
	{"healthy", false},
	{"a0, a1 fail fast", true},
	{"healthy again", false},
	{"zone a overloaded", true},
	{"healthy again", false},
}

func zonesScenario() scenario {
	zones := []string{"a", "a", "a", "b", "b", "b", "c", "c", "c"}
	return scenario{
		name:  "zones",
		title: "Three zones",
		models: fmt.Sprintf("Nine backends, a0-a2 in zone a (the client's), b0-b2 in zone b and c0-c2 in zone c (backends 0-8 in that order); "+
			"a remote RPC takes %v longer (the cross-zone round trip, added to the service time: local 3ms + Exp(2ms), remote 5ms + Exp(2ms)). "+
			"Five phases of equal length (the run is 5x -duration): healthy; a0 and a1 answer every RPC with UNAVAILABLE at once (connection and health up); healthy; "+
			"zone a overloaded: each of a0-a2 serves one RPC at a time, slowed so that the zone serves at most %.0f %% of the offered load "+
			"(at 600 RPC/s: mean 10ms, ~100 RPC/s each), with at most %d RPCs waiting per backend, further ones refused at once with RESOURCE_EXHAUSTED; healthy.",
			crossZoneDelay, 100*overloadShare, overloadQueue),
		notes: "`fulcrum_zone` is `weighted_least_request` with `\"localZone\":\"a\"`; every other policy ignores zones. " +
			"Local shares are counted by the servers; \"back after\" is the start of the first 250ms bucket of the phase with a local share of at least 97 %, \"local after\" the share from there to the end of the phase.",
		n:        len(zones),
		zones:    zones,
		phases:   zonePhases,
		policies: []string{"round_robin", "least_request", "wrr_orca", "fulcrum", "fulcrum_zone", "fulcrum_zone_hedging"},
		fault:    true,
		stretch:  float64(len(zonePhases)),
		opts: func(i int) backendOptions {
			o := homogeneous(i)
			if zones[i] != localZone {
				o.base += crossZoneDelay
			}
			return o
		},
		events: func(e *env, d time.Duration) []event {
			p := d / time.Duration(len(zonePhases))
			a := e.backends[:3]
			fail := func(c codes.Code) func() {
				return func() {
					a[0].failCode.Store(uint32(c))
					a[1].failCode.Store(uint32(c))
				}
			}
			// Zone a's capacity: 3 backends x 1 slot / mean service
			// time = overloadShare x rate.
			slow := 3 / (overloadShare * e.rate * (baseLatency + jitterLatency).Seconds())
			overload := func(on bool) func() {
				return func() {
					for _, b := range a {
						if on {
							b.setSlow(slow)
							b.limit.Store(newLimiter(1, overloadQueue))
						} else {
							b.limit.Store(nil)
							b.setSlow(1)
						}
					}
				}
			}
			return []event{
				{p, "a0,a1 fail", fail(codes.Unavailable)},
				{2 * p, "a0,a1 heal", fail(codes.OK)},
				{3 * p, "zone a overloaded", overload(true)},
				{4 * p, "zone a heals", overload(false)},
			}
		},
	}
}

// limiter lets a backend serve at most cap RPCs at once with at most
// queue more waiting; it refuses further ones at once with
// RESOURCE_EXHAUSTED.
type limiter struct {
	slots chan struct{}
	max   int64
	n     atomic.Int64 // RPCs holding or waiting for a slot
}

func newLimiter(capacity, queue int) *limiter {
	return &limiter{slots: make(chan struct{}, capacity), max: int64(capacity + queue)}
}

// acquire waits for a slot; release gives it back.
func (l *limiter) acquire(ctx context.Context, stop <-chan struct{}) (release func(), err error) {
	if l.n.Add(1) > l.max {
		l.n.Add(-1)
		return nil, status.Error(codes.ResourceExhausted, "backend overloaded: queue full")
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots; l.n.Add(-1) }, nil
	case <-ctx.Done():
		l.n.Add(-1)
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-stop:
		l.n.Add(-1)
		return nil, status.Error(codes.Unavailable, "backend closed")
	}
}

// series counts one backend's application RPCs per bucket of the
// measured part, by the time the server received them.
type series struct {
	start time.Time
	width time.Duration
	n     []atomic.Int64
}

func newSeries(start time.Time, dur, width time.Duration) *series {
	return &series{start: start, width: width, n: make([]atomic.Int64, int(dur/width)+1)}
}

func (s *series) add(t time.Time) {
	if i := int(t.Sub(s.start) / s.width); i >= 0 && i < len(s.n) {
		s.n[i].Add(1)
	}
}

func (s *series) counts() []int64 {
	out := make([]int64, len(s.n))
	for i := range s.n {
		out[i] = s.n[i].Load()
	}
	return out
}
