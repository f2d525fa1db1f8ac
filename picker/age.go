package picker

import "sync/atomic"

// The age of the oldest request in flight bounds an endpoint's latency
// from below: a hung endpoint's peak-EWMA estimate moves only when its
// requests end, so without this bound it keeps its healthy estimate while
// requests pile up on it, and the latency term then prefers it to slow
// peers (issue 21 f). Peers do the same: kratos' p2c node bounds its
// latency by the age of in-flight requests, Finagle's and linkerd's peak
// EWMA count pending work.
//
// An exact oldest start needs an ordered structure under a lock. A coarse
// lower bound is enough and stays lock-free: requests in flight are
// counted in ageSlots rotating time slots of 2^ageSlotShift ns (134ms),
// the slot of a request being given by its start. A request in the slot j
// epochs before the current one started before the end of that epoch, so
// the oldest non-empty slot gives a lower bound of the oldest age. A slot
// is reused every ageSlots epochs without being emptied: a request older
// than that is counted as if it had started later, which only lowers the
// bound (it stays a lower bound; it saturates near 940ms).
//
// The current epoch's slot bounds nothing (its requests may have just
// started), so an age shows only once it exceeds one slot: healthy tail
// latencies below 134ms never count. And the bound is that of the second
// oldest request, not the oldest: one long call (a stream with a deadline)
// does not make its endpoint look slow, while requests piling up on a hung
// endpoint do.
const (
	ageSlotShift = 27
	ageSlots     = 8
)

// ageSlotsOf counts tracked requests in flight by start epoch.
type ageSlotsOf [ageSlots]atomic.Int32

func ageSlot(start int64) int { return int(start>>ageSlotShift) & (ageSlots - 1) }

// minAged is how many tracked requests must be older than the bound.
const minAged = 2

// bound returns a lower bound of the age at now of the second oldest
// tracked request in flight, in nanoseconds (0: fewer than two older than
// a slot).
func (s *ageSlotsOf) bound(now int64) float64 {
	c := now >> ageSlotShift
	var n int32
	for j := int64(ageSlots - 1); j >= 1; j-- {
		if n += s[(c-j)&(ageSlots-1)].Load(); n >= minAged {
			return float64(now - (c-j+1)<<ageSlotShift)
		}
	}
	return 0
}
