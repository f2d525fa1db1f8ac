package healthprobe

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/probe"
)

func TestClassify(t *testing.T) {
	cfg := DefaultGRPCConfig()
	strict := cfg
	strict.UnimplementedIsHealthy = false
	resp := func(s healthpb.HealthCheckResponse_ServingStatus) *healthpb.HealthCheckResponse {
		return &healthpb.HealthCheckResponse{Status: s}
	}
	tests := []struct {
		name     string
		resp     *healthpb.HealthCheckResponse
		err      error
		timedOut bool
		cfg      GRPCConfig
		want     probe.Result
	}{
		{"serving", resp(healthpb.HealthCheckResponse_SERVING), nil, false, cfg, probe.Result{Outcome: probe.Healthy, Reason: "SERVING"}},
		{"not serving", resp(healthpb.HealthCheckResponse_NOT_SERVING), nil, false, cfg, probe.Result{Outcome: probe.NotServing, Reason: "NOT_SERVING"}},
		{"service unknown", resp(healthpb.HealthCheckResponse_SERVICE_UNKNOWN), nil, false, cfg, probe.Result{Outcome: probe.Unhealthy, Reason: "SERVICE_UNKNOWN"}},
		{"unknown", resp(healthpb.HealthCheckResponse_UNKNOWN), nil, false, cfg, probe.Result{Outcome: probe.Unhealthy, Reason: "UNKNOWN"}},
		{"own timeout", nil, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true, cfg, probe.Result{Outcome: probe.Timeout, Reason: "timeout after 250ms"}},
		{"own timeout, any code", nil, status.Error(codes.Canceled, "x"), true, cfg, probe.Result{Outcome: probe.Timeout, Reason: "timeout after 250ms"}},
		{"server's copy of our deadline fired first", nil, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false, cfg, probe.Result{Outcome: probe.Timeout, Reason: "timeout after 250ms"}},
		{"transport error", nil, status.Error(codes.Unavailable, "connection refused"), false, cfg, probe.Result{Outcome: probe.Error, Reason: "Unavailable: connection refused"}},
		{"not found (Check on an unknown service)", nil, status.Error(codes.NotFound, "unknown service"), false, cfg, probe.Result{Outcome: probe.Error, Reason: "NotFound: unknown service"}},
		{"non-status error", nil, errors.New("boom"), false, cfg, probe.Result{Outcome: probe.Error, Reason: "Unknown: boom"}},
		{"unimplemented is healthy", nil, status.Error(codes.Unimplemented, "x"), false, cfg, probe.Result{Outcome: probe.Healthy,
			Reason: "UNIMPLEMENTED: server has no grpc.health.v1.Health service, treated as healthy", Note: probe.AssumedHealthy}},
		{"unimplemented is unhealthy", nil, status.Error(codes.Unimplemented, "x"), false, strict, probe.Result{Outcome: probe.Error,
			Reason: "UNIMPLEMENTED: server has no grpc.health.v1.Health service"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, classify(tt.resp, tt.err, tt.timedOut, tt.cfg))
		})
	}
}

func TestIsTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	assert.True(t, isTimeout(ctx))

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	assert.False(t, isTimeout(ctx), "cancellation is not a timeout")
}
