// Package picker selects an endpoint for each request: weighted
// least-request over distinct candidates (power of N choices on in-flight
// requests, scaled by weight), with an optional peak-EWMA latency term and a
// per-endpoint admission gate (the circuit breaker).
//
// It knows no transport: the gRPC adapter (package balancer) and the HTTP
// adapter (package fulcrumhttp) call Select, send the request, classify its
// result into an Outcome and call Finish. It owns selection and the
// accounting of a request's life (in-flight, latency, breaker outcome); it
// does not decide which endpoints are candidates (package endpointset does).
//
// A Picker is an immutable snapshot; the per-endpoint state it reads
// (Endpoint) is shared by pointer and survives rebuilds. Select and Finish
// take no lock, never block and do not allocate (but for the rare Select,
// or Finish without the latency term, that starts the coarse clock's
// goroutine: clock.go). Under load they read that coarse clock and time a
// sample of requests (sample.go).
package picker

import (
	"errors"
	"fmt"
	"math"
	rand "math/rand/v2"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// latencyTolerance is the ratio of peak-EWMA latencies under which two
// candidates count as equally fast. Noise between equal backends stays
// below it, so it does not disturb weight-proportional shares; beyond it
// the slower one's load is (inFlight + 1) x ratio - 1, Linkerd's cost.
const latencyTolerance = 2.0

// latencyFloor is the smallest latency estimate the comparison uses. Below
// a millisecond, differences between equal endpoints are dominated by
// scheduling and GC noise, and they cost little in the tail.
const latencyFloor = float64(time.Millisecond)

// Entry is one candidate of a Picker.
type Entry struct {
	// Endpoint is the shared per-endpoint state.
	Endpoint *Endpoint
	// Weight is the effective weight (discovery weight x slow-start
	// factor); must be > 0.
	Weight float64
	// Gated says whether the endpoint's breaker decides admission. The
	// engine clears it for endpoints that maxEjectionPercent or panic mode
	// keep in rotation despite their breaker.
	Gated bool
}

// ErrAllRejected is wrapped by the error Select returns when every
// candidate's gate rejects the request.
var ErrAllRejected = errors.New("ejected by circuit breaker")

// Picker is an immutable weighted least-request picker.
type Picker struct {
	// All fields are read-only after New.
	cfg     Config
	k       int
	rate    float64 // 1 / LatencyDecay in ns (see decayWeight)
	gap     int64   // trickle gap: LatencyDecay / tricklePerDecay
	ended   *lastEnd
	entries []Entry
	alias   []aliasSlot // weighted sampling table; nil when all weights are equal
	zone    *zoned      // zone-aware choice (zone.go); nil: zone-unaware
	// locality counts selections, entries[:localN] being local (zone.go);
	// nil: not counted.
	locality *LocalityCounts
	localN   int
}

// randUint64 and randFloat64 are package variables so tests can make
// selection deterministic.
var (
	randUint64  = rand.Uint64
	randFloat64 = rand.Float64
)

// New builds a picker over entries, which must be non-empty and have
// positive weights.
func New(cfg Config, entries []Entry) *Picker {
	p := &Picker{
		cfg:     cfg,
		k:       min(max(cfg.ChoiceCount, 1), len(entries), MaxChoiceCount),
		rate:    1 / float64(time.Duration(cfg.LatencyDecay)),
		gap:     int64(cfg.LatencyDecay) / tricklePerDecay,
		ended:   new(lastEnd),
		entries: entries,
	}
	equal, total := true, 0.0
	for i := range entries {
		total += entries[i].Weight
		if entries[i].Weight != entries[0].Weight {
			equal = false
		}
	}
	if !equal {
		p.alias = buildAlias(entries, total)
	}
	return p
}

// Len returns the number of candidates.
func (p *Picker) Len() int { return len(p.entries) }

// Entry returns candidate i.
func (p *Picker) Entry(i int) *Entry { return &p.entries[i] }

// LatencyAware reports whether Finish times requests.
func (p *Picker) LatencyAware() bool { return p.cfg.LatencyAware }

// sample draws one entry index with probability proportional to weight.
func (p *Picker) sample() int {
	n := len(p.entries)
	r := randUint64()
	if p.alias == nil {
		return int((r >> 32) * uint64(n) >> 32)
	}
	// Vose's alias method: one random number, one comparison.
	i := int((r >> 32) * uint64(n) >> 32)
	if uint32(r) < p.alias[i].thr {
		return i
	}
	return int(p.alias[i].other)
}

// sampleDistinct draws an index not in seen. Weighted rejection sampling
// first; if that keeps colliding (one endpoint holds most of the weight),
// the next unseen index is taken so a pick never loops unboundedly.
func (p *Picker) sampleDistinct(seen []int) int {
	idx := 0
	for try := 0; try < 4; try++ {
		idx = p.sample()
		if !contains(seen, idx) {
			return idx
		}
	}
	for n := len(p.entries); contains(seen, idx); {
		idx = (idx + 1) % n
	}
	return idx
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// beats reports whether candidate b should replace the current best a.
//
// Candidates are sampled in proportion to weight, and b replaces a only if
// b would still be no more loaded per unit of weight than a after taking a
// share of this request:
//
//	(inFlight_b + u)^bias / weight_b <= inFlight_a^bias / weight_a,  u ~ U[0,1)
//
// At low load every candidate has 0 in flight, b (almost) never beats a,
// and the first, weight-sampled candidate wins: shares equal weights. At
// high load the rule equalises in-flight per unit of weight, so a slow or
// stuck endpoint, which holds more requests for the same rate, loses share.
//
// Why not "lower score wins": a distinct pair cannot include a heavy
// endpoint often enough for coin-flip comparisons to give it its share, so
// plain comparison compresses unequal weights toward equal shares at
// moderate load, and charging the challenger a full extra request
// over-corrects. The random fraction u dithers between the two
// (TestPicker_ClosedLoopShares measures it).
func (p *Picker) beats(b, a *Entry, now int64) bool {
	return p.beatsU(b, a, now, randFloat64())
}

// beatsU is beats with the random fraction u in [0, 1) given.
func (p *Picker) beatsU(b, a *Entry, now int64, u float64) bool {
	bias := p.cfg.ActiveRequestBias
	if bias == 0 {
		return false // weighted random: the first sampled candidate wins
	}
	na, nb := a.Endpoint.inFlight.Load(), b.Endpoint.inFlight.Load()
	la, lb := float64(na), float64(nb)+u
	var ea, eb, lastA, lastB float64
	if p.cfg.LatencyAware {
		ea, lastA = a.Endpoint.estimate(na, now, p.rate)
		eb, lastB = b.Endpoint.estimate(nb, now, p.rate)
		if ea > 0 && eb > 0 {
			ea, eb = max(ea, latencyFloor), max(eb, latencyFloor)
			// Linkerd's cost is latency x (in-flight + 1); applied only
			// beyond the tolerance so that noise between equal endpoints
			// leaves weight-proportional shares alone. The tolerance is
			// tested by multiplication: the common case (estimates within
			// it) then divides nothing. A faster endpoint that has stalled
			// (trickle.go) gets no advantage: a hung one keeps its healthy
			// estimate until the age bound shows, and meanwhile the cost
			// let it win until ten times its slow rivals' requests were
			// stuck on it (issue 21 f; in-flight alone, as with the
			// latency term off, stops it much sooner).
			if ea > latencyTolerance*eb {
				if !p.ended.stalled(b.Endpoint, nb, eb) {
					la = (la+1)*(ea/eb) - 1
				}
			} else if eb > latencyTolerance*ea {
				if !p.ended.stalled(a.Endpoint, na, ea) {
					lb = (lb+1)*(eb/ea) - 1
				}
			}
		} else {
			lastA, lastB = 0, 0 // no comparison of latencies: no penalty
		}
	}
	win := p.lighter(lb, la, a, b)
	// A penalised endpoint's win needs its trickle allowance, unless its
	// rival has stalled (trickle.go).
	switch {
	case win && lastB > trickleFactor*ea:
		return p.ended.stalled(a.Endpoint, na, ea) || b.Endpoint.takeTrickle(now, p.gap)
	case !win && lastA > trickleFactor*eb:
		return !p.ended.stalled(b.Endpoint, nb, eb) && !a.Endpoint.takeTrickle(now, p.gap)
	}
	return win
}

// lighter reports whether load lb on b is no more than load la on a per
// unit of weight, each raised to activeRequestBias.
func (p *Picker) lighter(lb, la float64, a, b *Entry) bool {
	if bias := p.cfg.ActiveRequestBias; bias != 1 {
		la, lb = math.Pow(la, bias), math.Pow(lb, bias)
	}
	return lb*a.Weight <= la*b.Weight
}

// Select chooses the endpoint for one request and counts it in flight. The
// caller sends the request to p.Entry(i) and then calls Finish with the
// token, or Abort if the request could not be sent. It is
// SelectBounded(false).
func (p *Picker) Select() (i int, t Token, err error) { return p.SelectBounded(false) }

// SelectBounded is Select for a request that is bounded in time (it has a
// deadline) or not. With the latency term, a bounded request's age while
// in flight bounds its endpoint's latency estimate from below (see
// ageSlotsOf): a hung endpoint stops looking fast. An unbounded one may be
// a long-lived stream, whose age says nothing about the endpoint's speed.
func (p *Picker) SelectBounded(bounded bool) (i int, t Token, err error) {
	var (
		now  int64
		real bool
	)
	if p.cfg.LatencyAware {
		now, real = recentNow()
	}
	var best int
	if p.zone == nil {
		best = p.choose(now)
	} else {
		best = p.zone.choose(now)
	}
	t.start = now
	if best >= 0 {
		if e := &p.entries[best]; e.Gated {
			tk, ok := e.Endpoint.allow()
			if ok {
				t.ticket, t.gated = tk, true
			} else {
				best = -1 // lost the race for the half-open trial
			}
		}
	}
	if best < 0 {
		// Every sampled candidate was rejected by its gate: scan all
		// endpoints from a random start for one that admits the call.
		var ok bool
		best, t.ticket, t.gated, ok = p.scanAdmitted()
		if !ok {
			return -1, Token{}, fmt.Errorf("all %d usable endpoints %w", len(p.entries), ErrAllRejected)
		}
	}
	if p.locality != nil {
		p.locality.add(best, best >= p.localN)
	}
	ep := p.entries[best].Endpoint
	// "The counter for a subchannel should be atomically incremented by one
	// after it has been successfully picked by the picker." - gRFC A48
	picks := ep.inFlight.picked()
	if real {
		t.timed = true
	} else if now != 0 && ep.sampled(now, picks) {
		t.timed, t.start = true, nanotime()
		coarse.advance(t.start)
	}
	if bounded && now != 0 {
		t.tracked = true
		ep.ages[ageSlot(t.start)].Add(1) // the slot Finish and Abort leave
	}
	return best, t, nil
}

// Abort undoes Select for a request that was never sent: it leaves flight
// and its breaker admission is returned.
func (p *Picker) Abort(i int, t Token) {
	e := p.entries[i].Endpoint
	e.inFlight.left()
	if t.tracked {
		e.ages[ageSlot(t.start)].Add(-1)
	}
	if t.gated {
		e.gate.Release(t.ticket)
	}
}

// Finish ends a request selected by Select: it leaves flight, its duration
// feeds the latency estimate as o.Timing says, and o.Verdict goes to the
// breaker if the request was gated.
//
// "... decrementing the subchannel counter once the RPC finishes
// (regardless of Status code)." - gRFC A48
func (p *Picker) Finish(i int, t Token, o Outcome) {
	e := p.entries[i].Endpoint
	e.inFlight.left()
	if t.tracked {
		e.ages[ageSlot(t.start)].Add(-1)
	}
	var end int64
	if p.cfg.LatencyAware && o.Timing != Untimed && (t.timed || o.Timing == LowerBound && t.start != 0) {
		end = nanotime()
		rtt := end - t.start
		if !t.timed {
			rtt -= int64(coarseTick) // the coarse start may be a tick early
		}
		e.latency.observe(float64(max(rtt, 0)), end, p.rate, o.Timing == LowerBound)
		p.ended.saw(end)
	}
	if !t.gated {
		return
	}
	if end == 0 {
		if p.cfg.LatencyAware {
			end = coarseRecent() // 0 when stopped: the breaker reads its clock
		} else {
			// Without the latency term no pick reads the clock: the
			// breaker's reading is the one that starts the coarse clock
			// under load (its window's buckets are a second wide).
			end, _ = recentNow()
		}
	}
	switch o.Verdict {
	case Success:
		e.record(t.ticket, true, end)
	case Failure:
		e.record(t.ticket, false, end)
	default:
		e.gate.Release(t.ticket)
	}
}

func (p *Picker) scanAdmitted() (idx int, t breaker.Ticket, gated, ok bool) {
	n := len(p.entries)
	start := int(randUint64() % uint64(n))
	for i := 0; i < n; i++ {
		idx := (start + i) % n
		e := &p.entries[idx]
		if !e.Gated {
			return idx, breaker.Ticket{}, false, true
		}
		if t, ok := e.Endpoint.gate.Allow(); ok {
			return idx, t, true, true
		}
	}
	return -1, breaker.Ticket{}, false, false
}
