package probe

import "time"

// Outcome is the class of one probe's result. It drives the verdict (only
// Healthy is a success; NotServing counts at once) and names the metric's
// probe_result.
type Outcome uint8

const (
	// Healthy: the server said it serves (gRPC SERVING, HTTP 2xx), or has
	// no health service and the configuration counts that as healthy
	// (Result.Note says so).
	Healthy Outcome = iota
	// Unhealthy: the server answered, and not healthy (gRPC
	// SERVICE_UNKNOWN or UNKNOWN, an HTTP status other than 2xx).
	Unhealthy
	// Timeout: no answer within the probe's timeout.
	Timeout
	// Error: the probe failed without an answer (connection error, an
	// RPC status, a missing health service counted as a failure).
	Error
	// NotServing: the server stated that it does not serve (gRPC
	// NOT_SERVING). It is the server's own statement, not an ambiguous
	// symptom like a timeout, so the verdict turns unhealthy at once,
	// whatever unhealthyThreshold says (grpc-go's health checking does the
	// same). Metrics count it as "unhealthy": an answer, not serving.
	NotServing
)

var outcomeNames = [...]string{
	Healthy:    "healthy",
	Unhealthy:  "unhealthy",
	Timeout:    "timeout",
	Error:      "error",
	NotServing: "unhealthy",
}

// String returns the outcome's name in metrics (README, "Metrics":
// grpc.lb.fulcrum.probe_result is one of healthy, unhealthy, timeout,
// error).
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// OK reports whether the outcome is a successful probe.
func (o Outcome) OK() bool { return o == Healthy }

// Note flags a result the loop's owner should warn about once per loop,
// not once per probe.
type Note uint8

const (
	// NoNote: nothing to warn about.
	NoNote Note = iota
	// AssumedHealthy: the server has no health service or endpoint (gRPC
	// UNIMPLEMENTED, HTTP 404) and the configuration counts that as
	// healthy (unimplementedIsHealthy, notFoundIsHealthy).
	AssumedHealthy
)

// Result is what one probe saw. Behaviour follows Outcome and Note only;
// Reason is for people (logs, the verdict's reason, fulcrumz).
type Result struct {
	Outcome Outcome
	// Reason says what the probe saw, in the words of the verdict.
	Reason string
	// Note, when set, asks for a one-time warning (Callbacks.Note).
	Note Note
}

// Probe is one completed probe, as observers (metrics, fulcrumz) see it.
type Probe struct {
	Outcome Outcome
	// Reason says what the probe saw, in the words of the verdict.
	Reason string
	// At is when it finished; Duration how long it took.
	At       time.Time
	Duration time.Duration
}
