package healthprobe

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// change is one verdict change: after which outcome (index into the input),
// the new verdict and its reason.
type change struct {
	at      int
	healthy bool
	reason  string
}

func TestVerdict_Thresholds(t *testing.T) {
	const (
		S = true  // successful probe
		F = false // failed probe
	)
	tests := []struct {
		name         string
		healthy, unh int // thresholds
		outcomes     []bool
		want         []change
	}{
		{
			name: "first success is healthy at once", healthy: 2, unh: 3,
			outcomes: []bool{S, S, S},
			want:     []change{{0, true, "ok"}},
		},
		{
			name: "first failure is unhealthy at once (warm-up gate)", healthy: 2, unh: 3,
			outcomes: []bool{F, F, F, F},
			want:     []change{{0, false, "bad"}},
		},
		{
			name: "unhealthy after exactly unhealthyThreshold failures", healthy: 2, unh: 3,
			outcomes: []bool{S, F, F, F, F},
			want:     []change{{0, true, "ok"}, {3, false, "3 consecutive failures: bad"}},
		},
		{
			name: "a success resets the failure count", healthy: 2, unh: 3,
			outcomes: []bool{S, F, F, S, F, F, S, F, F, F},
			want:     []change{{0, true, "ok"}, {9, false, "3 consecutive failures: bad"}},
		},
		{
			name: "healthy again after exactly healthyThreshold successes", healthy: 2, unh: 3,
			outcomes: []bool{S, F, F, F, S, S, S},
			want: []change{
				{0, true, "ok"},
				{3, false, "3 consecutive failures: bad"},
				{5, true, "2 consecutive successes: ok"},
			},
		},
		{
			name: "a failure resets the success count", healthy: 2, unh: 3,
			outcomes: []bool{F, S, F, S, F, S, S},
			want:     []change{{0, false, "bad"}, {6, true, "2 consecutive successes: ok"}},
		},
		{
			name: "thresholds of one flip on every change", healthy: 1, unh: 1,
			outcomes: []bool{S, F, S, S, F},
			want: []change{
				{0, true, "ok"},
				{1, false, "1 consecutive failures: bad"},
				{2, true, "1 consecutive successes: ok"},
				{4, false, "1 consecutive failures: bad"},
			},
		},
		{
			name: "long runs do not carry over past a flip", healthy: 3, unh: 2,
			outcomes: []bool{S, S, S, S, S, F, F, F, F, F, S, S, F, F, S, S, S},
			want: []change{
				{0, true, "ok"},
				{6, false, "2 consecutive failures: bad"},
				{16, true, "3 consecutive successes: ok"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Verdict
			var got []change
			for i, ok := range tt.outcomes {
				why := "bad"
				if ok {
					why = "ok"
				}
				if v.Observe(ok, why, tt.healthy, tt.unh) {
					got = append(got, change{i, v.healthy, v.reason})
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

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
		wantOK   bool
		wantWhy  string
	}{
		{"serving", resp(healthpb.HealthCheckResponse_SERVING), nil, false, cfg, true, "SERVING"},
		{"not serving", resp(healthpb.HealthCheckResponse_NOT_SERVING), nil, false, cfg, false, "NOT_SERVING"},
		{"service unknown", resp(healthpb.HealthCheckResponse_SERVICE_UNKNOWN), nil, false, cfg, false, "SERVICE_UNKNOWN"},
		{"unknown", resp(healthpb.HealthCheckResponse_UNKNOWN), nil, false, cfg, false, "UNKNOWN"},
		{"own timeout", nil, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true, cfg, false, "timeout after 250ms"},
		{"server's copy of our deadline fired first", nil, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false, cfg, false, "timeout after 250ms"},
		{"transport error", nil, status.Error(codes.Unavailable, "connection refused"), false, cfg, false, "Unavailable: connection refused"},
		{"not found (Check on an unknown service)", nil, status.Error(codes.NotFound, "unknown service"), false, cfg, false, "NotFound: unknown service"},
		{"non-status error", nil, errors.New("boom"), false, cfg, false, "Unknown: boom"},
		{"unimplemented is healthy", nil, status.Error(codes.Unimplemented, "x"), false, cfg, true,
			"UNIMPLEMENTED: server has no grpc.health.v1.Health service, treated as healthy"},
		{"unimplemented is unhealthy", nil, status.Error(codes.Unimplemented, "x"), false, strict, false,
			"UNIMPLEMENTED: server has no grpc.health.v1.Health service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := classify(tt.resp, tt.err, tt.timedOut, tt.cfg)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantWhy, why)
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

func TestJittered_Bounds(t *testing.T) {
	defer func(f func() float64) { randFloat = f }(randFloat)
	const interval = time.Second
	tests := []struct {
		r, jitter float64
		want      time.Duration
	}{
		{0, 0.2, 800 * time.Millisecond}, // the minimum: interval*(1-jitter)
		{0.5, 0.2, interval},
		{0.75, 0.2, 1100 * time.Millisecond},
		{0, 0.5, 500 * time.Millisecond},
		{0.25, 0.5, 750 * time.Millisecond},
		{0.9, 0, interval}, // no jitter, no spread
	}
	for _, tt := range tests {
		randFloat = func() float64 { return tt.r }
		assert.Equal(t, tt.want, jittered(interval, tt.jitter), "r=%v jitter=%v", tt.r, tt.jitter)
	}
	// The maximum: randFloat is < 1, but rounding may reach interval*(1+jitter).
	randFloat = func() float64 { return math.Nextafter(1, 0) }
	got := jittered(interval, 0.2)
	assert.LessOrEqual(t, got, 1200*time.Millisecond)
	assert.Greater(t, got, 1200*time.Millisecond-time.Microsecond)
}

func TestJittered_Uniform(t *testing.T) {
	defer func(f func() float64) { randFloat = f }(randFloat)
	r := rand.New(rand.NewPCG(1, 2)) // fixed seed: the test is deterministic
	randFloat = r.Float64

	const (
		interval = time.Second
		jitter   = 0.2
		n        = 20000
		buckets  = 10
	)
	lo, hi := time.Duration(float64(interval)*(1-jitter)), time.Duration(float64(interval)*(1+jitter))
	var hist [buckets]int
	var sum float64
	minSeen, maxSeen := hi, lo
	for range n {
		d := jittered(interval, jitter)
		if d < lo || d > hi {
			t.Fatalf("jittered wait %v outside [%v, %v]", d, lo, hi)
		}
		minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
		sum += float64(d)
		hist[min(int(float64(d-lo)/float64(hi-lo)*buckets), buckets-1)]++
	}
	// The draws reach both ends of the range...
	assert.Less(t, minSeen, lo+5*time.Millisecond)
	assert.Greater(t, maxSeen, hi-5*time.Millisecond)
	// ...average to the interval...
	assert.InDelta(t, float64(interval), sum/n, 0.01*float64(interval))
	// ...and fill every tenth of it evenly (expected n/buckets = 2000 each).
	for i, c := range hist {
		assert.InDelta(t, n/buckets, c, 0.1*n/buckets, "bucket %d", i)
	}
}
