package healthprobe

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/probe"
)

// Verdict is probe.Verdict.
type Verdict = probe.Verdict

// classify maps the result of one Check RPC to a probe result. timedOut says
// whether the probe's own deadline expired.
func classify(resp *healthpb.HealthCheckResponse, err error, timedOut bool, cfg GRPCConfig) probe.Result {
	if err == nil {
		// NOT_SERVING is the server's statement (counts at once);
		// SERVICE_UNKNOWN or UNKNOWN, from servers that send them on Check,
		// are plain failures; only SERVING is healthy.
		switch st := resp.GetStatus(); st {
		case healthpb.HealthCheckResponse_SERVING:
			return probe.Result{Outcome: probe.Healthy, Reason: st.String()}
		case healthpb.HealthCheckResponse_NOT_SERVING:
			return probe.Result{Outcome: probe.NotServing, Reason: st.String()}
		default:
			return probe.Result{Outcome: probe.Unhealthy, Reason: st.String()}
		}
	}
	s := status.Convert(err)
	// The deadline travels to the server (grpc-timeout), whose timer can fire
	// before ours: a hung handler then answers DEADLINE_EXCEEDED a moment
	// before our context expires. Both are this probe's timeout.
	if timedOut || s.Code() == codes.DeadlineExceeded {
		return probe.Result{Outcome: probe.Timeout, Reason: fmt.Sprintf("timeout after %v", cfg.Timeout)}
	}
	if s.Code() == codes.Unimplemented {
		// grpc-go's client health check: "Reports healthy for the LBing
		// purposes if health check is not implemented in the server."
		if cfg.UnimplementedIsHealthy {
			return probe.Result{Outcome: probe.Healthy, Reason: "UNIMPLEMENTED: server has no grpc.health.v1.Health service, treated as healthy", Note: probe.AssumedHealthy}
		}
		return probe.Result{Outcome: probe.Error, Reason: "UNIMPLEMENTED: server has no grpc.health.v1.Health service"}
	}
	return probe.Result{Outcome: probe.Error, Reason: fmt.Sprintf("%v: %s", s.Code(), s.Message())}
}

// isTimeout reports whether ctx, a probe's context, ended by its deadline.
func isTimeout(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded)
}
