package breaker

// OnTrialEnd sets fn to be called, like onChange, when a half-open trial
// succeeds without closing the breaker or is released: the next trial may
// go, so callers refused meanwhile may try again. Call it right after New,
// before the breaker is shared.
func (b *Breaker) OnTrialEnd(fn func()) { b.onTrialEnd = fn }

// Snapshot is a consistent view of a Breaker for decisions and reports.
type Snapshot struct {
	// TrialInFlight says, when State is HalfOpen, that a trial is in
	// flight; TrialAt is when it was admitted (clock units). It holds the
	// next trial back until TrialAt + TrialTimeout.
	TrialInFlight bool
	TrialAt       int64
	State         State
	// Until is, when State is Open, the clock reading at which the open
	// period ends (in the units of the clock given to New).
	Until int64
	// Trips is the level of the current (Open, HalfOpen) or last (Closed)
	// trip: the open period was OpenDuration x 2^(Trips-1), capped.
	Trips int
	// Transitions counts state changes since New.
	Transitions uint64
	// Since is the clock reading when the current phase began: for Open,
	// when the breaker tripped (the ejection cap keeps the earliest trips).
	Since int64
}

// Snapshot returns the breaker's current phase. It reads one atomic
// pointer: safe and cheap from any goroutine.
func (b *Breaker) Snapshot() Snapshot {
	p := b.cur.Load()
	s := Snapshot{State: p.state, Until: p.until, Trips: p.trips, Transitions: p.gen, Since: p.since}
	if p.state == HalfOpen {
		s.TrialInFlight = p.trials.Load() != p.successes.Load()
		s.TrialAt = p.trialAt.Load()
	}
	return s
}
