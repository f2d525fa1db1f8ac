package picker

// Verdict is what a finished request says about its endpoint's health, for
// the breaker.
type Verdict uint8

const (
	// NoVerdict: nothing was learnt (the request never reached the
	// endpoint, or the caller gave up).
	NoVerdict Verdict = iota
	// Success: the endpoint answered as a working endpoint does (including
	// application errors).
	Success
	// Failure: the endpoint failed the request in a way that counts
	// against it (a configured failure code or status, a connection error).
	Failure
)

// Timing says what a finished request's duration tells about the
// endpoint's speed.
type Timing uint8

const (
	// Untimed: nothing (a fast failure is not a fast endpoint).
	Untimed Timing = iota
	// Timed: the duration is the endpoint's latency for this request.
	Timed
	// LowerBound: the request was cut short (deadline, cancellation): the
	// endpoint's latency is at least the duration. It may raise the
	// estimate, never lower it, so a hung endpoint cannot look fast.
	LowerBound
)

// Outcome is the classification of a finished request, made by the
// transport adapter (gRPC status codes, HTTP statuses).
type Outcome struct {
	Verdict Verdict
	Timing  Timing
}
