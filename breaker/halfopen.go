package breaker

import (
	"fmt"
	"time"
)

// allowHalfOpen is Allow on a half-open phase p. retry says p stopped being
// current meanwhile (another goroutine moved first): decide again.
//
// Trials run one at a time: the next is admitted only once every earlier
// one has succeeded, so an endpoint that is still broken costs exactly one
// failed RPC per open period (with concurrent trials, every slot was taken
// within milliseconds under load and all of them failed). CAS rather than
// Add-then-undo so that the count never overshoots: exactly one caller wins
// however many race.
func (b *Breaker) allowHalfOpen(p *phase) (t Ticket, ok, retry bool) {
	if b.admitAll.Load() {
		// Counted like a trial, so that successes never exceeds trials
		// and Snapshot shows calls in flight; trialAt keeps the first
		// trial's time: once admit-all is off, the calls admitted
		// meanwhile hold the next trial back for TrialTimeout from it.
		p.trials.Add(1)
		return Ticket{p}, true, false
	}
	for {
		n := p.trials.Load()
		if n != p.successes.Load() {
			return b.supersedeTrial(p)
		}
		if n >= b.trials {
			return Ticket{}, false, false
		}
		// Stamped before the CAS so that no goroutine sees this trial in
		// flight with the previous trial's time (a lost CAS only makes the
		// stamp later).
		p.trialAt.Store(b.clock())
		if p.trials.CompareAndSwap(n, n+1) {
			return Ticket{p}, true, false
		}
	}
}

// supersedeTrial handles a caller arriving while p's trial is in flight. A
// trial that never finishes (a unary RPC without deadline to a hung server,
// a long-lived stream) must not keep the endpoint out for ever: after
// TrialTimeout it is superseded and says nothing any more (its ticket goes
// stale), and this caller becomes the trial of a fresh half-open phase.
func (b *Breaker) supersedeTrial(p *phase) (t Ticket, ok, retry bool) {
	now := b.clock()
	if now-p.trialAt.Load() < int64(b.cfg.TrialTimeout) {
		return Ticket{}, false, false
	}
	np := &phase{state: HalfOpen, gen: p.gen + 1, trips: p.trips, since: p.since}
	np.trials.Store(1)
	np.trialAt.Store(now)
	if !b.cur.CompareAndSwap(p, np) {
		return Ticket{}, false, true
	}
	b.notify(HalfOpen, HalfOpen, func() string {
		return fmt.Sprintf("trial RPC still in flight after trialTimeout %v; admitting another", time.Duration(b.cfg.TrialTimeout))
	})
	return Ticket{np}, true, false
}

// admitsHalfOpen is Admits on a half-open phase p: a trial slot is free, or
// the trial in flight has outlived TrialTimeout.
func (b *Breaker) admitsHalfOpen(p *phase) bool {
	n := p.trials.Load()
	if n == p.successes.Load() {
		return n < b.trials
	}
	return b.clock()-p.trialAt.Load() >= int64(b.cfg.TrialTimeout)
}

// SetAdmitAll sets whether a half-open breaker admits every call instead of
// one trial at a time. Outcomes count as usual: HalfOpenRequests successes
// close the breaker, any failure reopens it; an open period is never cut
// short. The endpoint set turns it on while the endpoints on trial are all
// the channel has (panic mode): then one trial at a time would refuse
// more requests during the recovery than panic mode did during the outage
// (issue 21 defect c). Safe for concurrent use; cheap when unchanged.
func (b *Breaker) SetAdmitAll(on bool) {
	if b.admitAll.Load() != on {
		b.admitAll.Store(on)
	}
}
