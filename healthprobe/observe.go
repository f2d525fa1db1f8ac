package healthprobe

import (
	"context"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Outcome is the class of one probe's result, for metrics.
type Outcome uint8

const (
	// OutcomeHealthy: SERVING (or UNIMPLEMENTED with
	// UnimplementedIsHealthy).
	OutcomeHealthy Outcome = iota
	// OutcomeUnhealthy: the server answered, and not SERVING.
	OutcomeUnhealthy
	// OutcomeTimeout: no answer within Timeout.
	OutcomeTimeout
	// OutcomeError: the Check RPC failed (connection error, UNIMPLEMENTED
	// counted as a failure, any other status).
	OutcomeError
)

var outcomeNames = [...]string{"healthy", "unhealthy", "timeout", "error"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Probe is one completed probe.
type Probe struct {
	Outcome Outcome
	// Reason says what the probe saw, in the words of the verdict.
	Reason string
	// At is when it finished; Duration how long it took.
	At       time.Time
	Duration time.Duration
}

// StartWithObserver is Start with one more callback: observe is called
// after every completed probe of the loop (a probe cut short by the loop's
// end is not reported), before the verdict the probe feeds is delivered to
// onChange. It runs on the probe goroutine under the same rules as
// onChange (stop waits for it; do not call stop from it). Observing does
// not change what is probed or when.
func StartWithObserver(sc balancer.SubConn, cfg GRPCConfig, onChange func(healthy bool, reason string), observe func(Probe)) (stop func()) {
	return start(sc, cfg, onChange, observe)
}

// outcomeOf classes the result of one Check RPC as classify judges it.
func outcomeOf(resp *healthpb.HealthCheckResponse, err error, timedOut bool, cfg GRPCConfig) Outcome {
	switch code := status.Code(err); {
	case err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
		return OutcomeHealthy
	case err == nil:
		return OutcomeUnhealthy
	case timedOut || code == codes.DeadlineExceeded:
		return OutcomeTimeout
	case code == codes.Unimplemented && cfg.UnimplementedIsHealthy:
		return OutcomeHealthy
	}
	return OutcomeError
}

// observe reports one completed probe to the listeners that asked for it.
func (p *producer) observe(pr Probe) {
	p.mu.Lock()
	var ls []*listener
	for _, l := range p.listeners {
		if l.onProbe != nil {
			ls = append(ls, l)
		}
	}
	p.mu.Unlock()
	for _, l := range ls {
		if p.ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		if !l.stopped {
			l.onProbe(pr)
		}
		l.mu.Unlock()
	}
}

// timedProbe sends one Check like probe does and also returns what the
// observers are told.
func timedProbe(ctx context.Context, client healthpb.HealthClient, cfg GRPCConfig) (resp *healthpb.HealthCheckResponse, d time.Duration, err error) {
	start := time.Now()
	resp, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: cfg.Service})
	return resp, time.Since(start), err
}
