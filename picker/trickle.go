package picker

// An endpoint far slower than its rival is penalised: it wins a comparison
// at most tricklePerDecay times per LatencyDecay (a trickle), whatever the
// request rate, instead of a share of the traffic.
//
// Why (issue 21 l): a 10x slower endpoint loses every comparison by the
// latency cost, until its estimate, which moves only when its requests
// end, has decayed to within latencyTolerance of its peers'. Then it
// counted as their equal and won about half of the comparisons it took
// part in, until its first request came back slow, some 50 ms later at
// 600 requests/s: a burst proportional to the request rate, once per
// decay. It got 0.7-1.1 % of the requests in the one-slow scenario, and
// the p99, the 1 % quantile, jumped from 12-19 ms to 50-79 ms whenever it
// went over 1 %.
//
// The trickle keeps the re-admission (the endpoint's requests are how its
// recovery is noticed) and bounds its burst: a penalised endpoint wins at
// most once per trickle gap (LatencyDecay / tricklePerDecay), so its first
// request, the probe, comes back before the next may go, and a still-slow
// answer puts the estimate back up. A penalised endpoint never wins a
// comparison the rule without it would lose (it is not forced in): at low
// rates nothing changes.
//
// Penalised means that the endpoint's last estimate, not decayed (the
// latency its latest requests showed; raised by the age of its requests
// in flight), is more than trickleFactor times its rival's current
// estimate (both at least latencyFloor). The decay alone does not lift the
// penalty, a request that comes back fast does: the estimate then blends
// toward the new latency with the weight of the time since its last
// sample, so after a quiet decay period one fast answer brings it most of
// the way. Endpoints equally slow are not penalised: the penalty is
// relative to the rival of each comparison.
//
// trickleFactor is 3 (1.5x latencyTolerance: between 2x and 3x the latency
// cost alone decides). Not more: peak-EWMA sits near the top of a busy
// endpoint's latencies (a higher sample moves it halfway up, a lower one
// hardly moves it between samples milliseconds apart), while a rarely
// picked endpoint's follows its few recent samples, so a backend 10x
// slower on average shows about 4x: 3 ms + Exp(2 ms) against 10x that,
// in the one-slow scenario, gives estimates near 12 ms against 40-80 ms.
// Not less: a healthy endpoint needs two slow requests in a row (one
// sample at most doubles the estimate) to exceed it, and noise between
// equal endpoints stays within the 2x tolerance.
const (
	trickleFactor   = latencyTolerance
	tricklePerDecay = 4
)

// A penalised endpoint needs no allowance against a rival that has
// stalled: at least minAged requests in flight and none ended for
// stallFactor times its estimate. A hung rival keeps its healthy estimate
// until the age bound shows (a slot, 134-268 ms), and meanwhile every
// request it wins is stuck; least-request's defence is its growing
// in-flight count, which the latency cost weighs, and which the trickle
// would override (in the slow-hang scenario, trickling the slow peers
// against hung ones lost 52 RPCs to deadlines against 33). A busy healthy
// rival ends a request every few milliseconds.
const stallFactor = 4

// stalled reports whether e, with inFlight requests in flight and
// estimate est (at least latencyFloor), has stalled at now.
func (e *Endpoint) stalled(inFlight, now int64, est float64) bool {
	return inFlight >= minAged && float64(now-e.latency.stamp.Load()) > stallFactor*est
}

// takeTrickle reports whether e, penalised, may win a comparison at now,
// and if so takes its allowance until now + gap. Lock-free: of racing
// callers, one wins the CAS.
func (e *Endpoint) takeTrickle(now, gap int64) bool {
	next := e.trickleAt.Load()
	return now >= next && e.trickleAt.CompareAndSwap(next, now+gap)
}
