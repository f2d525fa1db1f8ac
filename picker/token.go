package picker

import "github.com/fulcrum-lb/fulcrum/breaker"

// Token is one selected request. Pass it to exactly one of Finish or
// Abort.
type Token struct {
	ticket  breaker.Ticket
	gated   bool
	tracked bool  // counted in its endpoint's age slots (by start)
	timed   bool  // sampled: start is a real reading (sample.go)
	start   int64 // nanotime at Select, coarse unless timed; 0 without the latency term
}

// Same reports whether u may be finished with t's Finish: the same breaker
// admission (the same phase, gated alike), neither timed, and tracked alike
// in the same age slot epoch. A transport adapter may then reuse a Done
// built for t (made with t.Shared()) for u.
func (t Token) Same(u Token) bool {
	return t.ticket == u.ticket && t.gated == u.gated && !t.timed && !u.timed &&
		t.tracked == u.tracked && (!t.tracked || t.start>>ageSlotShift == u.start>>ageSlotShift)
}

// Shareable reports whether t's Finish may be shared with other requests
// (see Same): it is not timed.
func (t Token) Shareable() bool { return !t.timed }

// Shared returns t for a Finish shared by the requests whose tokens are
// Same as t. Their coarse starts differ, so it keeps only what they have
// in common: a tracked token's start becomes the last instant of its age
// slot epoch (the slot is the same, and a lower-bound outcome timed from
// it is still a lower bound: each of them started before it, give or take
// the tick Finish allows for); an untracked one's is dropped, and a
// lower-bound outcome finished with it is not timed.
func (t Token) Shared() Token {
	if t.tracked {
		t.start |= 1<<ageSlotShift - 1
	} else {
		t.start = 0
	}
	return t
}
