package healthprobe

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Verdict turns a sequence of probe outcomes into a healthy/unhealthy verdict
// with hysteresis. The zero value has no verdict yet. It is shared by the
// gRPC prober of this package and fulcrumhttp's HTTP prober.
//
// Envoy (config.core.v3.HealthCheck) defines the thresholds this follows:
// unhealthy_threshold is "the number of unhealthy health checks required
// before a host is marked unhealthy", healthy_threshold "the number of healthy
// health checks required before a host is marked healthy. Note that during
// startup, only a single successful health check is required to mark a host
// healthy." Here the first probe decides the initial verdict either way (the
// warm-up gate): a new endpoint that fails it starts unhealthy and needs
// healthyThreshold successes.
type Verdict struct {
	known     bool // a first probe has completed
	healthy   bool
	reason    string // why the verdict is what it is
	successes int    // consecutive successful probes, capped at the threshold
	failures  int    // consecutive failed probes, capped at the threshold
}

// Observe records one probe outcome (ok, and why it was or was not ok) and
// reports whether the verdict changed, which the first outcome always does.
func (v *Verdict) Observe(ok bool, why string, healthyThreshold, unhealthyThreshold int) (changed bool) {
	if !ok && why == notServing {
		// An explicit NOT_SERVING is the server's own statement, not an
		// ambiguous symptom like a timeout: act on it at once, as grpc-go's
		// own health checking does, so a draining server gets no traffic
		// from the first probe that sees it.
		unhealthyThreshold = 1
	}
	if ok {
		v.failures = 0
		v.successes = min(v.successes+1, healthyThreshold)
	} else {
		v.successes = 0
		v.failures = min(v.failures+1, unhealthyThreshold)
	}
	switch {
	case !v.known:
		v.known, v.healthy, v.reason = true, ok, why
		return true
	case ok && !v.healthy && v.successes >= healthyThreshold:
		v.healthy = true
		v.reason = fmt.Sprintf("%d consecutive successes: %s", v.successes, why)
		return true
	case !ok && v.healthy && v.failures >= unhealthyThreshold:
		v.healthy = false
		v.reason = fmt.Sprintf("%d consecutive failures: %s", v.failures, why)
		return true
	}
	return false
}

// notServing is the reason classify gives for an explicit NOT_SERVING.
var notServing = healthpb.HealthCheckResponse_NOT_SERVING.String()

// classify maps the result of one Check RPC to a probe outcome. timedOut says
// whether the probe's own deadline expired.
func classify(resp *healthpb.HealthCheckResponse, err error, timedOut bool, cfg GRPCConfig) (ok bool, why string) {
	if err == nil {
		// NOT_SERVING, and SERVICE_UNKNOWN or UNKNOWN from servers that send
		// them on Check, are failures; only SERVING is healthy.
		st := resp.GetStatus()
		return st == healthpb.HealthCheckResponse_SERVING, st.String()
	}
	s := status.Convert(err)
	// The deadline travels to the server (grpc-timeout), whose timer can fire
	// before ours: a hung handler then answers DEADLINE_EXCEEDED a moment
	// before our context expires. Both are this probe's timeout.
	if timedOut || s.Code() == codes.DeadlineExceeded {
		return false, fmt.Sprintf("timeout after %v", cfg.Timeout)
	}
	if s.Code() == codes.Unimplemented {
		// grpc-go's client health check: "Reports healthy for the LBing
		// purposes if health check is not implemented in the server."
		if cfg.UnimplementedIsHealthy {
			return true, "UNIMPLEMENTED: server has no grpc.health.v1.Health service, treated as healthy"
		}
		return false, "UNIMPLEMENTED: server has no grpc.health.v1.Health service"
	}
	return false, fmt.Sprintf("%v: %s", s.Code(), s.Message())
}

// isTimeout reports whether ctx, a probe's context, ended by its deadline.
func isTimeout(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded)
}

// Known reports whether a first probe has completed.
func (v *Verdict) Known() bool { return v.known }

// Healthy reports the current verdict (false before the first probe).
func (v *Verdict) Healthy() bool { return v.healthy }

// Reason says why the verdict is what it is.
func (v *Verdict) Reason() string { return v.reason }
