package picker

import "sync/atomic"

// flightCount is an endpoint's requests in flight and its picks in one
// atomic word, so that a pick costs one atomic add instead of two (an
// atomic add is a locked instruction, a large share of a pick's cost):
//
//	bits 63..flightBits  picks since the endpoint was created
//	bits flightBits-1..0 requests in flight
//
// In flight never goes below zero (a request leaves flight only after it
// entered it) and stays far below 2^flightBits (a million requests in
// flight to one endpoint from one process). Picks wrap after 2^44
// (1.7e13: 200 days at a million picks per second to one endpoint).
type flightCount struct {
	w atomic.Uint64
}

const (
	flightBits = 20
	flightMask = 1<<flightBits - 1
	pickUnit   = 1 << flightBits
)

// Load returns the requests in flight.
func (f *flightCount) Load() int64 { return int64(f.w.Load() & flightMask) }

// picked counts one pick, which enters flight, and returns the picks
// counted with it (sample.go samples by it).
func (f *flightCount) picked() uint64 { return f.w.Add(pickUnit+1) >> flightBits }

// left takes one request out of flight.
func (f *flightCount) left() { f.w.Add(^uint64(0)) }

// picks returns the picks counted.
func (f *flightCount) picks() uint64 { return f.w.Load() >> flightBits }

// Store sets the requests in flight to n, keeping the picks (tests).
func (f *flightCount) Store(n int64) {
	for {
		old := f.w.Load()
		if f.w.CompareAndSwap(old, old&^flightMask|uint64(n)&flightMask) {
			return
		}
	}
}

// Add adds delta to the requests in flight (not to the picks) and returns
// the new count; picked and left are the hot path's.
func (f *flightCount) Add(delta int64) int64 {
	return int64(f.w.Add(uint64(delta)) & flightMask)
}
