package endpointset

import (
	"fmt"
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// Conn is the connectivity of an endpoint as its transport reports it.
type Conn uint8

const (
	// ConnIdle: not connected and not trying (gRPC IDLE).
	ConnIdle Conn = iota
	// ConnConnecting: a connection attempt is under way.
	ConnConnecting
	// ConnReady: connected; requests can be sent.
	ConnReady
	// ConnFailure: the last connection attempt failed (gRPC
	// TRANSIENT_FAILURE).
	ConnFailure
)

func (c Conn) String() string {
	switch c {
	case ConnIdle:
		return "idle"
	case ConnConnecting:
		return "connecting"
	case ConnReady:
		return "ready"
	case ConnFailure:
		return "transient-failure"
	}
	return fmt.Sprintf("Conn(%d)", uint8(c))
}

// State is what the engine decided about one endpoint.
type State uint8

const (
	// Usable: connected, healthy, warmed up, admitted by its breaker.
	Usable State = iota
	// Connecting: making its first connection (not counted by panic mode).
	Connecting
	// Disconnected: not connected (failed to connect, or lost its
	// connection and reconnecting).
	Disconnected
	// Warming: connected, waiting for its first successful probe (not
	// counted by panic mode).
	Warming
	// Unhealthy: its probe says so.
	Unhealthy
	// Ejected: its breaker is open.
	Ejected
)

var stateNames = [...]string{"usable", "connecting", "disconnected", "warming", "unhealthy", "ejected"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Spec is one endpoint of a resolver update.
type Spec struct {
	// Key identifies the endpoint across updates (its first address).
	Key string
	// Addrs are its addresses, for reports.
	Addrs []string
	// Weight is its discovery weight, already normalised to [1, MaxWeight].
	Weight uint32
	// Zone is its zone (locality), "" when unknown.
	Zone string
	// Metadata is free-form, for reports.
	Metadata map[string]string
}

// Record is the engine's state of one endpoint. It survives picker
// rebuilds and resolver updates that keep the endpoint. Its fields are
// guarded by the Set's mutex and change only through the Set's methods; the
// adapter keeps its own per-endpoint data in Value.
type Record struct {
	// Key and Hot are read-only after creation (Hot is replaced, with the
	// record, only when the breaker configuration changes: see Set.Update).
	Key string
	// Hot is the state shared with pickers: in-flight, latency, breaker.
	Hot *picker.Endpoint
	// Value belongs to the adapter (a gRPC child balancer, an HTTP
	// transport); the engine never reads it.
	Value any

	spec Spec

	conn      Conn
	everReady bool // has been Ready at least once
	hadConn   bool // NewConnection was called before
	// Health, from the active probe of the current connection.
	probing bool // a prober runs for the current connection
	known   bool // the prober has given a verdict for this connection
	healthy bool // its current verdict
	warmed  bool // a successful probe since the connection became Ready
	reason  string

	// Slow start. rampFrom is when the current ramp began (zero: none);
	// rampNext says that the next time the endpoint becomes usable it
	// ramps (new endpoint, reconnect, recovery from unhealthy).
	rampFrom time.Time
	rampNext bool
	// outcome of the last decision, for reports; decided says there was
	// one.
	last    Result
	decided bool
	probe   *ProbeResult // the last probe, for reports (see ObserveProbe)
}

// Result is the engine's decision about one endpoint.
type Result struct {
	State State
	// Reason says why, in words for logs and the snapshot.
	Reason string
	// Weight is the effective weight (discovery weight x slow-start
	// factor) while usable; 0 otherwise.
	Weight float64
	// Ramping is true while slow start holds the weight back.
	Ramping bool
	// Gated is false for an endpoint kept in rotation despite its breaker
	// (maxEjectionPercent, panic mode).
	Gated bool
	// Trial says the endpoint's breaker is on trial: its open period is
	// over and it admits trial requests, one at a time, or every request
	// while the endpoints not on trial are too few to be out of panic mode
	// on their own.
	Trial bool
	// Picked says the endpoint is a candidate of the current picker.
	Picked bool
	// Kept says its breaker is open and maxEjectionPercent keeps it in
	// rotation (State Usable, Gated false).
	Kept bool
}
