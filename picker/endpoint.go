package picker

import (
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// cacheLine is the padding unit that keeps the hot per-endpoint state of
// different endpoints on separate cache lines: every pick and every Done
// writes it, so two endpoints sharing a line would make the cores serving
// them invalidate each other.
const cacheLine = 64

// Endpoint is the state of one endpoint that outlives pickers: in-flight
// requests, picks, the latency estimate and the gate. Pickers and the engine
// share it by pointer.
//
// Layout: one line of rarely written fields, then one line of everything
// a candidate's comparison reads and a pick and its Done write, including
// the breaker's closed phase (breaker.Mirror). Comparing two candidates
// reads one line of each (at 1000 endpoints a line is a likely cache miss
// and costs as much as the rest of the pick); the chosen one's first line
// and its Breaker are read only when its breaker is not closed, or when it
// fails. The first line of the next Endpoint in memory keeps hot lines
// apart.
type Endpoint struct {
	addr      string           // read-only after construction
	gate      *breaker.Breaker // read-only after construction
	trickleAt atomic.Int64     // penalised: no win before (trickle.go); written at most tricklePerDecay times per decay
	sampleAt  atomic.Int64     // coarse time of the last pick sampled by age (sample.go); written at most once per sampleAge
	_         [cacheLine - 40]byte

	inFlight flightCount    // and picks
	closed   breaker.Mirror // gate's phase while closed (breaker.MirrorClosed); written on its transitions only
	ages     ageSlotsOf
	latency  peakEWMA
}

// ShareClock tells that e's breaker reads Nanotime, so that Finish hands it
// the reading it took for the latency estimate: one clock read per request
// end instead of two (a clock read is a large share of a pick's cost). Call
// it before e is used.
func (e *Endpoint) ShareClock() {
	if e.gate != nil {
		e.gate.ShareClock()
	}
}

// allow admits a request through e's gate: a closed one from e's own line
// (breaker.Mirror), any other by the breaker.
func (e *Endpoint) allow() (breaker.Ticket, bool) {
	if t, ok := e.closed.Allow(); ok {
		return t, true
	}
	return e.gate.Allow()
}

// record passes a request's verdict to the breaker, with Finish's clock
// reading end (0: none): a success on a closed breaker from e's own line
// and the phase, anything else through the breaker.
func (e *Endpoint) record(t breaker.Ticket, ok bool, end int64) {
	if ok && e.closed.Succeeded(t, end) {
		return
	}
	if end != 0 {
		e.gate.RecordAt(t, ok, end)
		return
	}
	e.gate.Record(t, ok)
}

// NewEndpoint returns the shared state of the endpoint reached at addr
// (used in logs and errors). gate is its circuit breaker, or nil.
//
// The Endpoint mirrors gate's closed phase (breaker.MirrorClosed): a
// breaker belongs to one Endpoint.
func NewEndpoint(addr string, gate *breaker.Breaker) *Endpoint {
	e := &Endpoint{addr: addr, gate: gate}
	if gate != nil {
		gate.MirrorClosed(&e.closed)
	}
	return e
}

// Breaker returns the endpoint's circuit breaker, or nil.
func (e *Endpoint) Breaker() *breaker.Breaker { return e.gate }

// Addr returns the address the endpoint was created with.
func (e *Endpoint) Addr() string { return e.addr }

// InFlight returns the number of requests selected for e and not finished.
func (e *Endpoint) InFlight() int64 { return e.inFlight.Load() }

// Picks returns the number of requests selected for e since it was created.
func (e *Endpoint) Picks() uint64 { return e.inFlight.picks() }

// estimate is the latency estimate the comparison uses at now: the
// peak-EWMA, raised to the age bound of the bounded requests in flight
// (inFlight is e's in-flight count, 0 skips the age slots). last is the
// same without the decay since the last sample (see trickle.go).
func (e *Endpoint) estimate(inFlight int64, now int64, rate float64) (v, last float64) {
	v, last = e.latency.values(now, rate)
	if inFlight >= minAged {
		bound := e.ages.bound(now)
		v, last = max(v, bound), max(last, bound)
	}
	return v, last
}

// Latency returns the current peak-EWMA latency estimate at the process's
// monotonic clock (zero when unknown or when the latency term is off).
func (e *Endpoint) Latency(decay time.Duration) time.Duration {
	return time.Duration(e.latency.value(nanotime(), 1/float64(decay)))
}
