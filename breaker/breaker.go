// Package breaker implements a lock-free per-endpoint circuit breaker that
// ejects an endpoint whose RPCs fail and readmits it through trial RPCs.
//
// It owns one endpoint's breaker state machine and its configuration
// (Config). It knows nothing of transports, of the other endpoints or of
// time beyond the clock it is given: what an open breaker means for the
// endpoint set (the ejection cap, panic mode, when to decide again) is
// package endpointset's, and what counts as a failure is the adapter's.
package breaker

import (
	"fmt"
	"sync/atomic"
	"time"
)

// phase is one stay of a Breaker in one state. Every transition installs a
// new phase with a single CAS of Breaker.cur, so the phase pointer is the
// generation: an outcome whose Ticket names a phase that is no longer
// current is stale, and because the Ticket keeps its phase alive the
// pointer can never be reused while that outcome is in flight (no ABA).
//
// Layout: what Record of a closed phase reads (state, ratio, consecutive)
// comes first and the failure-ratio window is inline, not behind a
// pointer: one dependent cache miss fewer per request end.
type phase struct {
	// Read-only after the phase is published.
	state State
	ratio bool // Closed: win counts outcomes (the failure-ratio trigger is on)
	// Closed: copies of the Breaker's, so that a success is recorded from
	// the phase alone (Mirror.Succeeded).
	resets bool  // the consecutive-failures trigger is on
	shared bool  // the caller's clock readings are the breaker's (ShareClock)
	epoch  int64 // Breaker.epoch
	bucket int64 // Breaker.bucket

	consecutive atomic.Int64 // Closed: failures in a row

	gen   uint64 // transitions since New
	trips int    // Open, HalfOpen: level of the current trip; Closed: of the last one
	since int64  // clock when the phase began
	until int64  // Open: clock when the open period ends

	// HalfOpen: trials counts the trial calls admitted and not released,
	// successes those that succeeded, so trials-successes is the number in
	// flight. Allow admits only by a CAS of trials from n after reading
	// successes == n; successes never falls and never exceeds trials, so a
	// CAS that succeeds proves no trial was in flight at that instant: at
	// most one ever is.
	trials    atomic.Int32
	successes atomic.Int32
	// trialAt is the clock when the latest trial was admitted: a trial
	// still in flight after TrialTimeout is superseded (see Allow).
	trialAt atomic.Int64

	win window // Closed with ratio: the failure-ratio window
}

// Ticket is an admitted call. Pass it to exactly one of Record or Release.
// The zero Ticket is ignored by both.
type Ticket struct {
	p *phase
}

// Breaker is a circuit breaker for one endpoint. All its methods are safe
// for concurrent use, take no lock and never block; Allow and Record of a
// closed breaker do not allocate.
//
// Layout: what Allow and Record of a closed breaker read comes first, in
// one cache line (cur, epoch, bucket, consecutive, clock); at a thousand
// endpoints every line a request touches is likely a cache miss. A caller
// with a Mirror does not reach the Breaker at all for a closed breaker's
// admissions and successes (the phase carries copies of epoch, bucket and
// whether consecutive failures count).
type Breaker struct {
	cur atomic.Pointer[phase]
	// Read-only after New.
	epoch       int64 // clock at New; window slots count from it
	bucket      int64 // width of a window bucket in clock units
	consecutive int64 // cfg.ConsecutiveFailures
	clock       func() int64
	trials      int32 // cfg.HalfOpenRequests
	// admitAll: a half-open breaker admits every call (SetAdmitAll).
	admitAll atomic.Bool

	cfg      Config
	onChange func(from, to State, reason string)
	// onTrialEnd, if set (OnTrialEnd), is called when a half-open trial
	// ends without a transition: the next trial may go.
	onTrialEnd func()
	// mirror, if set, holds the current phase while it is closed
	// (MirrorClosed).
	mirror atomic.Pointer[Mirror]
	// shared: the clock readings callers pass are of clock (ShareClock).
	shared atomic.Bool
}

// New returns a closed Breaker. cfg must pass Validate (New panics
// otherwise: it is a programming error, callers validate the service
// config first). clock returns monotonic nanoseconds; nil means the
// process's monotonic clock. onChange, if not nil, is called exactly once
// per transition, synchronously, by the goroutine that performed it (in
// Allow or Record); a half-open trial superseded after TrialTimeout is a
// HalfOpen -> HalfOpen transition. Calls for two quick transitions may run concurrently on
// different goroutines and be seen out of order; a consumer that counts open
// breakers should count edges (+1 when to == Open, -1 when from == Open),
// which commute.
func New(cfg Config, clock func() int64, onChange func(from, to State, reason string)) *Breaker {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if clock == nil {
		clock = monotonicNow
	}
	b := &Breaker{
		cfg:         cfg,
		trials:      int32(cfg.HalfOpenRequests),
		clock:       clock,
		onChange:    onChange,
		bucket:      int64(cfg.Window / numBuckets),
		consecutive: int64(cfg.ConsecutiveFailures),
	}
	b.epoch = clock()
	b.cur.Store(b.newClosed(nil, b.epoch))
	return b
}

var processStart = time.Now()

func monotonicNow() int64 { return int64(time.Since(processStart)) }

// State returns the current state. An open breaker whose period has elapsed
// reports Open until the next Allow moves it to HalfOpen.
func (b *Breaker) State() State {
	return b.cur.Load().state
}

// Admits reports, without side effects, whether Allow would admit a call
// now. Between Admits and Allow another goroutine may take the trial, so
// Allow can still refuse.
func (b *Breaker) Admits() bool {
	p := b.cur.Load()
	switch p.state {
	case Closed:
		return true
	case HalfOpen:
		return b.admitAll.Load() || b.admitsHalfOpen(p)
	default:
		return b.clock() >= p.until
	}
}

// Allow admits one call and returns its Ticket, or ok == false if the
// breaker refuses it. In HalfOpen it admits the caller as the next trial
// only if no trial is in flight, every earlier trial has succeeded and
// fewer than HalfOpenRequests were admitted; an open breaker whose period
// has elapsed moves to HalfOpen and admits the caller as its first trial.
func (b *Breaker) Allow() (t Ticket, ok bool) {
	for {
		p := b.cur.Load()
		switch p.state {
		case Closed:
			return Ticket{p}, true
		case HalfOpen:
			if t, ok, retry := b.allowHalfOpen(p); !retry {
				return t, ok
			}
		default:
			now := b.clock()
			if now < p.until {
				return Ticket{}, false
			}
			np := &phase{state: HalfOpen, gen: p.gen + 1, trips: p.trips, since: now}
			np.trials.Store(1)
			np.trialAt.Store(now)
			if b.cur.CompareAndSwap(p, np) {
				b.syncMirror()
				b.notify(Open, HalfOpen, func() string {
					return fmt.Sprintf("open period %v elapsed", time.Duration(p.until-p.since))
				})
				return Ticket{np}, true
			}
			// Another goroutine moved first; decide again on its phase.
		}
	}
}

// Record reports the outcome of a call admitted by Allow. Outcomes of calls
// admitted before the last transition are ignored: an RPC that was slow
// from before a trip must neither close nor reopen the breaker.
func (b *Breaker) Record(t Ticket, success bool) {
	b.record(t, success, 0, false)
}

// RecordAt is Record for a caller that has just read its clock (a Done that
// measures latency does): now is that reading, used if it is b's clock
// (ShareClock). The clock read is most of the cost of Record (about 20ns of
// 30ns on a VM).
func (b *Breaker) RecordAt(t Ticket, success bool, now int64) {
	b.record(t, success, now, true)
}

// record reads the clock only if haveNow is false and the outcome needs the
// time, so that a breaker without the ratio trigger never reads it while
// closed.
func (b *Breaker) record(t Ticket, success bool, now int64, haveNow bool) {
	p := t.p
	if p == nil || p != b.cur.Load() {
		return
	}
	if haveNow && !b.shared.Load() {
		haveNow = false // not a reading of b's clock
	}
	if !haveNow && (p.ratio || p.state != Closed || !success) {
		now = b.clock()
	}
	switch p.state {
	case Closed:
		b.recordClosed(p, success, now)
	case HalfOpen:
		if !success {
			b.trip(p, now, func() string { return "trial RPC failed" })
			return
		}
		if p.successes.Add(1) == b.trials {
			if b.cur.CompareAndSwap(p, b.newClosed(p, now)) {
				b.syncMirror()
				b.notify(HalfOpen, Closed, func() string {
					return fmt.Sprintf("%d/%d trial RPCs succeeded", b.trials, b.trials)
				})
			}
			return
		}
		// The next trial may go: callers that were refused while this one
		// was in flight must be told.
		if p == b.cur.Load() && b.onTrialEnd != nil {
			b.onTrialEnd()
		}
	}
}

// Release returns the admission of a call that Allow admitted but that was
// never sent or whose outcome says nothing about the endpoint (for example
// because the child picker failed). It counts as no outcome; releasing the
// trial in flight lets the next caller in as that trial.
func (b *Breaker) Release(t Ticket) {
	if t.p != nil && t.p.state == HalfOpen {
		t.p.trials.Add(-1)
		if t.p == b.cur.Load() && b.onTrialEnd != nil {
			b.onTrialEnd()
		}
	}
}

func (b *Breaker) recordClosed(p *phase, success bool, now int64) {
	if success {
		p.succeed(now)
		return
	}
	if b.consecutive > 0 {
		if n := p.consecutive.Add(1); n >= b.consecutive {
			b.trip(p, now, func() string { return fmt.Sprintf("%d consecutive failures", n) })
			return
		}
	}
	if p.ratio {
		slot := p.slot(now)
		p.win.add(slot, true)
		f, total := p.win.sum(slot)
		if total > 0 && total >= uint64(b.cfg.MinRequests) {
			if r := float64(f) / float64(total); r >= b.cfg.FailureRatio {
				b.trip(p, now, func() string {
					return fmt.Sprintf("failure ratio %.2f over %v (%d/%d)", r, b.cfg.Window, f, total)
				})
			}
		}
	}
}

// trip opens the breaker from p (Closed or HalfOpen) if p is still current.
func (b *Breaker) trip(p *phase, now int64, reason func() string) {
	trips := p.trips
	// The backoff starts over once the breaker has stayed closed for
	// MaxOpenDuration: an endpoint that failed an hour ago is not punished
	// today, while one that flaps keeps doubling its open period.
	if p.state == Closed && now-p.since >= int64(b.cfg.MaxOpenDuration) {
		trips = 0
	}
	if trips < maxTrips {
		trips++
	}
	d := b.cfg.openDuration(trips)
	np := &phase{state: Open, gen: p.gen + 1, trips: trips, since: now, until: now + int64(d)}
	if b.cur.CompareAndSwap(p, np) {
		b.syncMirror()
		b.notify(p.state, Open, reason)
	}
}

// maxTrips bounds the trip counter; 2^62 times any open duration is past any
// cap.
const maxTrips = 62

func (b *Breaker) newClosed(prev *phase, now int64) *phase {
	p := &phase{state: Closed, since: now, resets: b.consecutive > 0, shared: b.shared.Load(), epoch: b.epoch, bucket: b.bucket}
	if prev != nil {
		p.gen = prev.gen + 1
		p.trips = prev.trips
	}
	if b.cfg.FailureRatio > 0 {
		p.ratio = true
	}
	return p
}

// succeed counts a success in closed phase p at now (the breaker's clock;
// read only with the failure-ratio trigger).
func (p *phase) succeed(now int64) {
	// Load first: a store on every success would bounce the cache line
	// between the cores running RPCs to this endpoint.
	if p.resets && p.consecutive.Load() != 0 {
		p.consecutive.Store(0)
	}
	if p.ratio {
		p.win.add(p.slot(now), false)
	}
}

// slot is the failure-ratio window's time slot of now, in a closed phase.
func (p *phase) slot(now int64) int64 {
	return max(now-p.epoch, 0) / p.bucket
}

// notify takes the reason as a func so that no string is built when nobody
// listens.
func (b *Breaker) notify(from, to State, reason func() string) {
	if b.onChange != nil {
		b.onChange(from, to, reason())
	}
}
