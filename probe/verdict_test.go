package probe

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
				r := Result{Outcome: Unhealthy, Reason: "bad"}
				if ok {
					r = Result{Outcome: Healthy, Reason: "ok"}
				}
				if v.Observe(r, tt.healthy, tt.unh) {
					got = append(got, change{i, v.healthy, v.reason})
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestVerdict_OutcomesNotReasons: only the outcome steers the verdict. An
// explicit NotServing turns a healthy endpoint unhealthy at once, whatever
// unhealthyThreshold says and whatever its reason reads; an Unhealthy
// result whose reason reads "NOT_SERVING" is an ordinary failure; Timeout
// and Error are ordinary failures too.
func TestVerdict_OutcomesNotReasons(t *testing.T) {
	healthy := Result{Outcome: Healthy, Reason: "ok"}
	for _, tc := range []struct {
		name    string
		r       Result
		flipsAt int // failures until unhealthy, with unhealthyThreshold 3
	}{
		{"not serving counts at once", Result{Outcome: NotServing, Reason: "draining"}, 1},
		{"a reason is not an outcome", Result{Outcome: Unhealthy, Reason: "NOT_SERVING"}, 3},
		{"timeout", Result{Outcome: Timeout, Reason: "timeout after 1s"}, 3},
		{"error", Result{Outcome: Error, Reason: "connection refused"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Verdict
			assert.True(t, v.Observe(healthy, 2, 3))
			for i := 1; i <= 3; i++ {
				changed := v.Observe(tc.r, 2, 3)
				assert.Equal(t, i == tc.flipsAt, changed, "failure %d", i)
				assert.Equal(t, i < tc.flipsAt, v.Healthy(), "healthy after failure %d", i)
			}
		})
	}
	// The first result decides the verdict either way (warm-up gate).
	var v Verdict
	assert.False(t, v.Known())
	assert.True(t, v.Observe(Result{Outcome: NotServing, Reason: "NOT_SERVING"}, 2, 3))
	assert.True(t, v.Known())
	assert.False(t, v.Healthy())
	assert.Equal(t, "NOT_SERVING", v.Reason())
}

// TestOutcome_String: the names metrics use (README, grpc.lb.fulcrum.probes).
func TestOutcome_String(t *testing.T) {
	for o, want := range map[Outcome]string{
		Healthy: "healthy", Unhealthy: "unhealthy", NotServing: "unhealthy",
		Timeout: "timeout", Error: "error", 5: "unknown",
	} {
		assert.Equal(t, want, o.String())
	}
	assert.True(t, Healthy.OK())
	for _, o := range []Outcome{Unhealthy, NotServing, Timeout, Error} {
		assert.False(t, o.OK(), "%v", o)
	}
}

func TestJittered_Bounds(t *testing.T) {
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
		assert.Equal(t, tt.want, jittered(interval, tt.jitter, tt.r), "r=%v jitter=%v", tt.r, tt.jitter)
	}
	// The maximum: a draw is < 1, but rounding may reach interval*(1+jitter).
	got := jittered(interval, 0.2, math.Nextafter(1, 0))
	assert.LessOrEqual(t, got, 1200*time.Millisecond)
	assert.Greater(t, got, 1200*time.Millisecond-time.Microsecond)
}

func TestJittered_Uniform(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2)) // fixed seed: the test is deterministic

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
		d := jittered(interval, jitter, r.Float64())
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

func TestScaledInterval(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		n        int
		rate     float64
		want     time.Duration
	}{
		{500 * time.Millisecond, 4, 200, 500 * time.Millisecond},
		{500 * time.Millisecond, 100, 200, 500 * time.Millisecond},
		{500 * time.Millisecond, 1000, 200, 5 * time.Second},
		{500 * time.Millisecond, 10000, 200, 50 * time.Second},
		{500 * time.Millisecond, 10000, 0, 500 * time.Millisecond},
		{2 * time.Second, 300, 200, 2 * time.Second},
	} {
		if got := ScaledInterval(tc.interval, tc.n, tc.rate); got != tc.want {
			t.Errorf("ScaledInterval(%v, %d, %g) = %v, want %v", tc.interval, tc.n, tc.rate, got, tc.want)
		}
	}
}
