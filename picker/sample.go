package picker

import "time"

// Under load, not every request is timed: a request reads the real clock
// (when picked and when it ends) and feeds the latency estimate only if it
// is sampled. Sampled are:
//
//   - every request picked on a real clock reading (the coarse clock is
//     stopped: low rates, or tests on a fake clock), so that at low rates
//     every request is timed as before;
//   - a request picked sampleAge or more (on the coarse clock) after the
//     last one of its endpoint sampled by this rule (sampleAt; of racing
//     picks, one wins a CAS), so that an endpoint that gets a request
//     less often than every sampleAge has every request timed, and a busy
//     one a sample at least every sampleAge (250 per second);
//   - every sampleEvery-th pick of an endpoint (its pick count, which the
//     pick's atomic add returns), so that a change shows within
//     sampleEvery requests whatever the coarse clock says.
//
// Skipping the others keeps the estimate's meaning: it is a time-decayed
// average (the weight of a sample depends on the time since the previous
// one, not on how many there were), and which request is sampled does not
// depend on its latency. A request that was not sampled still counts in
// flight, in the age bound (by its coarse start) and in its breaker's
// outcomes (at a coarse reading). A lower-bound outcome (a cancelled
// request, a hedge's loser) of a request that was not sampled is timed
// from its coarse start less a tick, still a lower bound: it may raise the
// estimate, never lower it.
const (
	sampleAge   = int64(4 * time.Millisecond)
	sampleEvery = 32 // a power of two
)

// sampled reports whether a request picked at the coarse reading now, its
// pick being the endpoint's picks-th, is timed.
func (e *Endpoint) sampled(now int64, picks uint64) bool {
	if picks&(sampleEvery-1) == 0 {
		return true
	}
	at := e.sampleAt.Load()
	return now-at >= sampleAge && e.sampleAt.CompareAndSwap(at, now)
}
