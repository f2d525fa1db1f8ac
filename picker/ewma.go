package picker

import (
	"math"
	"sync/atomic"
)

// peakEWMA is Linkerd's (and Finagle's) "peak EWMA" latency estimate: a
// sample above the current estimate moves it up at once (so a backend that
// turns slow is penalised within a couple of RPCs), a sample below it is
// blended in with a weight that decays exponentially with the time since
// the last update.
//
// Unlike Linkerd, a higher sample moves the estimate only halfway up
// (riseFactor). With a pure peak, the endpoint that serves more RPCs (a
// heavier one) sees more of the random latency spikes every process has
// (GC, scheduling) and looks slower than its equal peers: with a pure peak,
// the latency-aware cases of TestBalancer_WeightedShares came out 3-4
// points off 1:2:4 under -race; halfway rises pass them and keep a
// sustained slowdown visible after two or three samples.
//
// Reading it decays it toward zero with elapsed time, so an endpoint that
// stopped receiving traffic because it looked slow is tried again after about
// one decay period instead of being starved forever.
//
// The two words are updated with separate atomics: under concurrent updates a
// sample may be blended against a slightly stale timestamp. That only blurs
// an estimate that is a heuristic anyway, and keeps Pick and Done lock-free.
//
// A sample counts as at most clipFactor times the current estimate (at
// least latencyFloor): with the halfway rise, one request can at most
// double the estimate, which stays within latencyTolerance of equal
// peers. grpc-go's Done fires when a call ends, so a stream's lifetime
// arrives as a sample; unclipped, a 60s stream made its endpoint's
// estimate 30s and it got 0 of 1000 picks for 20s (issue 21 e). Linkerd
// avoids this by timing the first response, which grpc-go's balancer API
// does not report. A real slowdown still shows within two or three
// requests (the estimate at least doubles with each), and a bounded
// request that hangs shows while in flight (ageSlotsOf).
const (
	riseFactor = 0.5
	clipFactor = 3.0
)

type peakEWMA struct {
	cost  atomic.Uint64 // math.Float64bits of the estimate, in nanoseconds
	stamp atomic.Int64  // monotonic nanoseconds of the last update
}

// The decay's time constant tau is passed as its inverse, rate = 1/tau
// per nanosecond: a multiplication instead of a division on every read of
// an estimate (two per pick, one per request end).

// observe records one RPC latency rtt (nanoseconds) completed at now. A
// lowerBound sample (an RPC cut short by a deadline or a cancellation: its
// latency is at least rtt) may only raise the estimate.
func (e *peakEWMA) observe(rtt float64, now int64, rate float64, lowerBound bool) {
	for {
		oldBits := e.cost.Load()
		prev := math.Float64frombits(oldBits)
		w := decayWeight(now-e.stamp.Load(), rate)
		if lowerBound && rtt <= prev*w {
			return
		}
		rtt := min(rtt, clipFactor*max(prev*w, latencyFloor))
		next := prev + (rtt-prev)*riseFactor
		if rtt < prev {
			next = prev*w + rtt*(1-w)
		}
		if e.cost.CompareAndSwap(oldBits, math.Float64bits(next)) {
			e.stamp.Store(now)
			return
		}
	}
}

// value returns the estimate at now, decayed toward zero for the time since
// the last sample. Zero means "no information".
func (e *peakEWMA) value(now int64, rate float64) float64 {
	v, _ := e.values(now, rate)
	return v
}

// values returns value and the estimate as of the last sample (not
// decayed).
func (e *peakEWMA) values(now int64, rate float64) (v, last float64) {
	c := math.Float64frombits(e.cost.Load())
	if c == 0 {
		return 0, 0
	}
	return c * decayWeight(now-e.stamp.Load(), rate), c
}

// decayWeight is exp(-elapsed/tau), rate = 1/tau.
func decayWeight(elapsed int64, rate float64) float64 {
	if elapsed <= 0 {
		return 1
	}
	x := float64(elapsed) * rate
	if x < 0.01 {
		// Under load samples arrive far more often than tau: the
		// second-order Taylor term is exact to 2e-7 here and saves the
		// math.Exp that dominated the latency-aware pick.
		return 1 - x + x*x/2
	}
	return math.Exp(-x)
}
