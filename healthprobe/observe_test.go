package healthprobe

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestOutcomeOf: every probe result falls in the metric's class that
// matches classify's verdict: healthy exactly when classify says ok.
func TestOutcomeOf(t *testing.T) {
	serving := &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}
	notServing := &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}
	strict := DefaultGRPCConfig()
	strict.UnimplementedIsHealthy = false
	for _, tc := range []struct {
		name     string
		resp     *healthpb.HealthCheckResponse
		err      error
		timedOut bool
		cfg      GRPCConfig
		want     Outcome
	}{
		{"serving", serving, nil, false, DefaultGRPCConfig(), OutcomeHealthy},
		{"not serving", notServing, nil, false, DefaultGRPCConfig(), OutcomeUnhealthy},
		{"service unknown", &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN}, nil, false, DefaultGRPCConfig(), OutcomeUnhealthy},
		{"our deadline", nil, status.Error(codes.Canceled, "x"), true, DefaultGRPCConfig(), OutcomeTimeout},
		{"server's deadline", nil, status.Error(codes.DeadlineExceeded, "x"), false, DefaultGRPCConfig(), OutcomeTimeout},
		{"unimplemented, lenient", nil, status.Error(codes.Unimplemented, "x"), false, DefaultGRPCConfig(), OutcomeHealthy},
		{"unimplemented, strict", nil, status.Error(codes.Unimplemented, "x"), false, strict, OutcomeError},
		{"unavailable", nil, status.Error(codes.Unavailable, "x"), false, DefaultGRPCConfig(), OutcomeError},
		{"plain error", nil, errors.New("x"), false, DefaultGRPCConfig(), OutcomeError},
	} {
		got := outcomeOf(tc.resp, tc.err, tc.timedOut, tc.cfg)
		if got != tc.want {
			t.Errorf("%s: outcomeOf = %v, want %v", tc.name, got, tc.want)
		}
		if ok, _ := classify(tc.resp, tc.err, tc.timedOut, tc.cfg); ok != (got == OutcomeHealthy) {
			t.Errorf("%s: classify ok=%t but outcome %v", tc.name, ok, got)
		}
	}
}
