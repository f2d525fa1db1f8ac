package breaker

import "sync/atomic"

// Mirror is a copy of a Breaker's current phase while the breaker is
// closed (nil otherwise), kept in memory of the caller's (MirrorClosed). A
// caller that admits most calls on a closed breaker (the picker, for every
// candidate of every pick and every request's end) then tests, admits and
// records the common case from its own cache line and the phase, without
// reaching the Breaker (at a thousand endpoints each line a request
// touches is a likely cache miss: the Breaker and its phase were two
// dependent ones per pick and two per end).
//
// A Mirror may lag a transition for an instant, like Admits: a ticket it
// gives may name a phase that has just ended, and Record, like every
// outcome of a call admitted before a transition, then ignores it. It never
// stays wrong: each transition stores the mirror again and then checks
// that the phase it stored is still current, so the last store is of the
// current phase.
type Mirror struct {
	p atomic.Pointer[phase]
}

// Closed reports whether the mirrored breaker is closed.
func (m *Mirror) Closed() bool { return m.p.Load() != nil }

// Allow is Breaker.Allow for a closed breaker, from the mirror alone: ok is
// false if the breaker is not closed (the caller then asks the Breaker).
func (m *Mirror) Allow() (t Ticket, ok bool) {
	p := m.p.Load()
	return Ticket{p}, p != nil
}

// Succeeded records the success of a call that the current closed phase
// admitted, from the mirror and the phase alone. now is the time of the
// caller's clock if it read it (0: not read), used only if the breaker
// shares that clock (ShareClock). It reports false if it recorded nothing
// (another phase's ticket, or the failure-ratio window needs a time the
// caller did not give): the caller then passes the outcome to Record or
// RecordAt, which decide as always.
func (m *Mirror) Succeeded(t Ticket, now int64) bool {
	p := t.p
	if p == nil || p != m.p.Load() {
		return false
	}
	if p.ratio && (now == 0 || !p.shared) {
		return false
	}
	p.succeed(now)
	return true
}

// MirrorClosed makes b keep m equal to its phase while closed: set now,
// and after every transition by the goroutine that made it. A breaker
// mirrors to one Mirror; a second call detaches the first one, leaving it
// nil (not closed: its reader asks b).
func (b *Breaker) MirrorClosed(m *Mirror) {
	if old := b.mirror.Swap(m); old != nil && old != m {
		old.p.Store(nil)
	}
	b.syncMirror()
}

// ShareClock tells b that the clock readings its caller passes (RecordAt,
// Mirror.Succeeded) are readings of the clock b was built with, which b
// then uses instead of reading it again (a clock read is a large share of
// a request end's cost). Without it, b reads its own clock. Call it before
// b is used: the current closed phase is replaced (tickets it gave are
// ignored).
func (b *Breaker) ShareClock() {
	if b.shared.Swap(true) {
		return
	}
	for {
		p := b.cur.Load()
		if p.state != Closed {
			return // the next closed phase copies shared
		}
		np := b.newClosed(p, p.since)
		np.gen = p.gen // not a transition
		np.consecutive.Store(p.consecutive.Load())
		if b.cur.CompareAndSwap(p, np) {
			b.syncMirror()
			return
		}
	}
}

// syncMirror stores b's phase, if closed, in its mirror. Called after
// every transition that may change it.
func (b *Breaker) syncMirror() {
	m := b.mirror.Load()
	if m == nil {
		return
	}
	for {
		p := b.cur.Load()
		if p.state == Closed {
			m.p.Store(p)
		} else {
			m.p.Store(nil)
		}
		if b.cur.Load() == p {
			return
		}
	}
}
