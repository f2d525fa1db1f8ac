package breaker

import "fmt"

// State is the state of a Breaker.
type State int32

const (
	// Closed admits every call and counts outcomes.
	Closed State = iota
	// Open admits no call until its open period has elapsed.
	Open
	// HalfOpen admits up to HalfOpenRequests trial calls one at a time: the
	// next only once every earlier one has succeeded (every call while
	// SetAdmitAll is on). All must succeed to close; any failure reopens.
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}
