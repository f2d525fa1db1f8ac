package picker

import (
	"sync/atomic"
	"time"
)

// An endpoint far slower than its rival is penalised: it wins a comparison
// at most tricklePerDecay times per LatencyDecay (a trickle), whatever the
// request rate, instead of a share of the traffic.
//
// Why (issue 21 l): peak-EWMA sits near the top of a busy endpoint's
// latencies (a higher sample moves it halfway up, a lower one hardly moves
// it between samples milliseconds apart), while a rarely picked endpoint's
// follows its few recent samples. So a backend 10x slower on average
// showed only about 4x (3 ms + Exp(2 ms) against 10x that, as in the
// one-slow scenario: estimates near 12 ms against 40-80 ms), and the
// latency cost, (inFlight + 1) x 4 - 1, let it win whenever a peer had 3
// to 7 requests in flight, which bursty arrivals give now and then, and
// whenever its estimate had decayed to within latencyTolerance. Its share
// grew with the rate: 0.7-1.1 % in the one-slow scenario at 600
// requests/s, and the p99, the 1 % quantile, jumped from 12-19 ms to
// 50-79 ms whenever it went over 1 % (in TestPicker_SlowEndpointTrickle's
// simulation, 0.55 % at 1 000/s and 0.73 % at 4 000/s).
//
// A penalised endpoint's win needs its allowance: at most one per trickle
// gap (LatencyDecay / tricklePerDecay), so its request, a probe, comes
// back before the next may go, and a still-slow answer keeps it
// penalised; a fast one lifts the penalty (below). It is never forced in:
// it wins only comparisons the latency cost gives it, so at low rates
// nothing changes. The exception, a stalled rival, is below.
//
// Penalised means that the endpoint's last estimate, not decayed (the
// latency its latest requests showed, raised by the age of its requests
// in flight), is more than trickleFactor times its rival's current
// estimate (both at least latencyFloor). The decay alone does not lift the
// penalty, a request that comes back fast does: the estimate then blends
// toward the new latency with the weight of the time since its last
// sample. Endpoints equally slow are not penalised: the penalty is
// relative to the rival of each comparison.
//
// trickleFactor is latencyTolerance, 2: the penalty applies where the
// latency cost does, by the last estimate. In the one-slow scenario (6 s,
// 600/s) the 10x backend got 29-73 requests with 4, 7-21 with 3, and 7-8
// (the trickle) in every run with 2. Equal endpoints stay within 2x of
// each other (the premise of the tolerance), and one slow sample at most
// doubles an estimate, so a healthy endpoint needs two in a row.
const (
	trickleFactor   = latencyTolerance
	tricklePerDecay = 4
)

// A penalised endpoint needs no allowance against a rival that has
// stalled: at least minAged requests in flight, and other endpoints'
// requests (of the same picker) have ended over stallFactor times its
// estimate after its last one did. A hung rival keeps its healthy estimate
// until the age bound shows (a slot, 134-268 ms), and meanwhile every
// request it wins is stuck; least-request's defence is its growing
// in-flight count, which the latency cost weighs, and which the trickle
// would override (in one run of the slow-hang scenario, trickling the slow
// peers against hung ones too lost 52 RPCs to deadlines, against 17-30
// before the trickle and 19-32 with this exception). A busy healthy rival
// ends a request every few milliseconds. Measured against other
// endpoints' ends rather than the clock, so that a pause of the client
// process (a GC, a loaded machine) does not make every endpoint look
// stalled. Its last end is known by its last sample: while requests are
// sampled (sample.go), that may be up to sampleAge older than its last
// end, which is added as a margin.
const stallFactor = 4

// lastEnd is the time of a recent timed request end on a Picker: the
// latest, give or take lastEndStep (stored at most once per step, so that
// the word is rarely written).
type lastEnd struct{ at atomic.Int64 }

const lastEndStep = int64(time.Millisecond)

// saw records a timed request end at now.
func (l *lastEnd) saw(now int64) {
	if now-l.at.Load() > lastEndStep {
		l.at.Store(now)
	}
}

// stalled reports whether e, with inFlight requests in flight and
// estimate est (at least latencyFloor), has stalled.
func (l *lastEnd) stalled(e *Endpoint, inFlight int64, est float64) bool {
	if inFlight < minAged {
		return false
	}
	margin := 0.0
	if coarseRecent() != 0 {
		margin = float64(sampleAge) // requests are sampled (sample.go)
	}
	return float64(l.at.Load()-e.latency.stamp.Load()) > stallFactor*est+margin
}

// takeTrickle reports whether e, penalised, may win a comparison at now,
// and if so takes its allowance until now + gap. Lock-free: of racing
// callers, one wins the CAS.
func (e *Endpoint) takeTrickle(now, gap int64) bool {
	next := e.trickleAt.Load()
	return now >= next && e.trickleAt.CompareAndSwap(next, now+gap)
}
