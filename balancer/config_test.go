package balancer

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestParseConfig covers every field: defaults, valid values and each
// bound, with the error naming field, value and constraint.
func TestParseConfig(t *testing.T) {
	def := DefaultConfig()
	with := func(f func(c *LBConfig)) *LBConfig {
		c := DefaultConfig()
		f(c)
		return c
	}
	tests := []struct {
		name    string
		input   string
		want    *LBConfig
		wantErr string
	}{
		{name: "empty object", input: `{}`, want: def},
		{name: "empty input", input: ``, want: def},
		{name: "all top-level fields", input: `{"choiceCount":3,"activeRequestBias":0.5,"latencyAware":true,"latencyDecay":"2s","panicThresholdPercent":0,"maxEjectionPercent":100}`,
			want: with(func(c *LBConfig) {
				c.ChoiceCount, c.ActiveRequestBias, c.LatencyAware = 3, 0.5, true
				c.LatencyDecay, c.PanicThresholdPercent, c.MaxEjectionPercent = Duration(2*time.Second), 0, 100
			})},
		{name: "choiceCount 10", input: `{"choiceCount":10}`, want: with(func(c *LBConfig) { c.ChoiceCount = 10 })},
		{name: "choiceCount 1", input: `{"choiceCount":1}`, wantErr: "weighted_least_request: choiceCount: 1, must be >= 2"},
		{name: "choiceCount 11", input: `{"choiceCount":11}`, wantErr: "weighted_least_request: choiceCount: 11, must be <= 10"},
		{name: "choiceCount string", input: `{"choiceCount":"2"}`, wantErr: `weighted_least_request: choiceCount: string, must be a number`},
		{name: "bias 0", input: `{"activeRequestBias":0}`, want: with(func(c *LBConfig) { c.ActiveRequestBias = 0 })},
		{name: "bias negative", input: `{"activeRequestBias":-1}`, wantErr: "weighted_least_request: activeRequestBias: -1, must be in [0, 10]"},
		{name: "bias too big", input: `{"activeRequestBias":11}`, wantErr: "activeRequestBias: 11, must be in [0, 10]"},
		{name: "latencyDecay too small", input: `{"latencyDecay":"10ms"}`, wantErr: "latencyDecay: 10ms, must be in [100ms, 10m0s]"},
		{name: "latencyDecay not a duration", input: `{"latencyDecay":"soon"}`, wantErr: `must be a duration string like "5s"`},
		{name: "latencyDecay number", input: `{"latencyDecay":5}`, wantErr: `must be a duration string like "5s"`},
		{name: "panic 101", input: `{"panicThresholdPercent":101}`, wantErr: "panicThresholdPercent: 101, must be in [0, 100]"},
		{name: "maxEjection -1", input: `{"maxEjectionPercent":-1}`, wantErr: "maxEjectionPercent: -1, must be in [0, 100]"},
		{name: "unknown field", input: `{"choiseCount":2}`, wantErr: `weighted_least_request: unknown field "choiseCount"`},
		{name: "unknown nested field", input: `{"breaker":{"threshold":2}}`, wantErr: `unknown field "threshold"`},
		{name: "not an object", input: `[1]`, wantErr: "weighted_least_request: config: array, must be a JSON object"},
		{name: "bad json", input: `{"choiceCount":`, wantErr: "weighted_least_request: config:"},
		{name: "trailing data", input: `{} {}`, wantErr: "trailing data"},

		{name: "breaker fields", input: `{"breaker":{"enabled":true,"consecutiveFailures":3,"failureRatio":0.3,"minRequests":5,"window":"30s","openDuration":"1s","maxOpenDuration":"10s","halfOpenRequests":1,"failureCodes":["UNAVAILABLE","deadline_exceeded"]}}`,
			want: with(func(c *LBConfig) {
				c.Breaker = BreakerConfig{Enabled: true, ConsecutiveFailures: 3, FailureRatio: 0.3, MinRequests: 5,
					Window: Duration(30 * time.Second), OpenDuration: Duration(time.Second), MaxOpenDuration: Duration(10 * time.Second),
					HalfOpenRequests: 1, FailureCodes: []string{"UNAVAILABLE", "deadline_exceeded"}}
			})},
		{name: "breaker disabled", input: `{"breaker":{"enabled":false,"consecutiveFailures":0,"failureRatio":0}}`,
			want: with(func(c *LBConfig) {
				c.Breaker.Enabled, c.Breaker.ConsecutiveFailures, c.Breaker.FailureRatio = false, 0, 0
			})},
		{name: "breaker no trigger", input: `{"breaker":{"consecutiveFailures":0,"failureRatio":0}}`, wantErr: "breaker.consecutiveFailures: 0, must be > 0 when breaker.failureRatio is 0"},
		{name: "breaker consecutive too big", input: `{"breaker":{"consecutiveFailures":1001}}`, wantErr: "breaker.consecutiveFailures: 1001, must be <= 1000"},
		{name: "breaker ratio", input: `{"breaker":{"failureRatio":1.5}}`, wantErr: "breaker.failureRatio: 1.5, must be in [0, 1]"},
		{name: "breaker minRequests", input: `{"breaker":{"minRequests":0}}`, wantErr: "breaker.minRequests: 0, must be >= 1"},
		{name: "breaker window", input: `{"breaker":{"window":"100ms"}}`, wantErr: "breaker.window: 100ms, must be in [1s, 10m0s]"},
		{name: "breaker openDuration", input: `{"breaker":{"openDuration":"0s"}}`, wantErr: "breaker.openDuration: 0s, must be in [10ms, 1h0m0s]"},
		{name: "breaker maxOpen < open", input: `{"breaker":{"openDuration":"10s","maxOpenDuration":"5s"}}`, wantErr: "breaker.maxOpenDuration: 5s, must be in [10s, 24h0m0s]"},
		{name: "breaker halfOpen", input: `{"breaker":{"halfOpenRequests":0}}`, wantErr: "breaker.halfOpenRequests: 0, must be >= 1"},
		{name: "breaker bad code", input: `{"breaker":{"failureCodes":["UNAVAILABLE","NOPE"]}}`, wantErr: `breaker.failureCodes[1]: "NOPE", must be a non-OK gRPC status code name`},
		{name: "breaker OK code", input: `{"breaker":{"failureCodes":["OK"]}}`, wantErr: `breaker.failureCodes[0]: "OK"`},
		{name: "breaker codes not list", input: `{"breaker":{"failureCodes":"UNAVAILABLE"}}`, wantErr: "breaker.failureCodes: string, must be a list of strings"},

		{name: "healthProbe fields", input: `{"healthProbe":{"enabled":true,"service":"svc","interval":"2s","timeout":"2s","jitter":0.5,"unhealthyThreshold":1,"healthyThreshold":100,"warmup":false,"unimplementedIsHealthy":false}}`,
			want: with(func(c *LBConfig) {
				c.HealthProbe = HealthProbeConfig{Enabled: true, Service: "svc", Interval: Duration(2 * time.Second), Timeout: Duration(2 * time.Second),
					Jitter: 0.5, UnhealthyThreshold: 1, HealthyThreshold: 100}
			})},
		{name: "healthProbe interval", input: `{"healthProbe":{"interval":"1ms"}}`, wantErr: "healthProbe.interval: 1ms, must be in [10ms, 1h0m0s]"},
		{name: "healthProbe timeout > interval", input: `{"healthProbe":{"interval":"1s","timeout":"2s"}}`, wantErr: "healthProbe.timeout: 2s, must be in [1ms, 1s]"},
		{name: "healthProbe jitter", input: `{"healthProbe":{"jitter":0.6}}`, wantErr: "healthProbe.jitter: 0.6, must be in [0, 0.5]"},
		{name: "healthProbe unhealthy", input: `{"healthProbe":{"unhealthyThreshold":0}}`, wantErr: "healthProbe.unhealthyThreshold: 0, must be >= 1"},
		{name: "healthProbe healthy", input: `{"healthProbe":{"healthyThreshold":101}}`, wantErr: "healthProbe.healthyThreshold: 101, must be <= 100"},
		{name: "healthProbe warmup type", input: `{"healthProbe":{"warmup":"yes"}}`, wantErr: "healthProbe.warmup: string, must be true or false"},

		{name: "slowStart fields", input: `{"slowStart":{"window":"1m","aggression":2,"minWeightPercent":50}}`,
			want: with(func(c *LBConfig) {
				c.SlowStart = SlowStartConfig{Window: Duration(time.Minute), Aggression: 2, MinWeightPercent: 50}
			})},
		{name: "slowStart off", input: `{"slowStart":{"window":"0s"}}`, want: with(func(c *LBConfig) { c.SlowStart.Window = 0 })},
		{name: "slowStart window", input: `{"slowStart":{"window":"2h"}}`, wantErr: "slowStart.window: 2h0m0s, must be in [0s, 1h0m0s]"},
		{name: "slowStart aggression", input: `{"slowStart":{"aggression":0}}`, wantErr: "slowStart.aggression: 0, must be in (0, 10]"},
		{name: "slowStart minWeight", input: `{"slowStart":{"minWeightPercent":0}}`, wantErr: "slowStart.minWeightPercent: 0, must be in [1, 100]"},
		{name: "several errors", input: `{"choiceCount":1,"breaker":{"halfOpenRequests":0}}`, wantErr: "choiceCount: 1, must be >= 2\nweighted_least_request: breaker.halfOpenRequests: 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := builder{}.ParseConfig([]byte(tc.input))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig(%s) error = %v, want one containing %q", tc.input, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig(%s) failed: %v", tc.input, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(BreakerConfig{}), cmpopts.IgnoreFields(LBConfig{}, "LoadBalancingConfig")); diff != "" {
				t.Errorf("ParseConfig(%s) diff (-want +got):\n%s", tc.input, diff)
			}
		})
	}
}

// TestParseConfig_FailureMask checks the codes the breaker counts.
func TestParseConfig_FailureMask(t *testing.T) {
	cfg, err := parseConfig([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	// UNAVAILABLE 14, INTERNAL 13, DATA_LOSS 15, RESOURCE_EXHAUSTED 8.
	if got, want := failureMask(cfg.Breaker.FailureCodes), uint32(1<<14|1<<13|1<<15|1<<8); got != want {
		t.Errorf("default failure mask %b, want %b", got, want)
	}
	if got := failureMask(DefaultConfig().Breaker.FailureCodes); got != uint32(1<<14|1<<13|1<<15|1<<8) {
		t.Errorf("DefaultConfig() failure mask %b: a parent policy handing it over would get breakers that never trip", got)
	}
	cfg, err = parseConfig([]byte(`{"breaker":{"failureCodes":["cancelled","DEADLINE_EXCEEDED"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := failureMask(cfg.Breaker.FailureCodes), uint32(1<<1|1<<4); got != want {
		t.Errorf("mask %b, want %b", got, want)
	}
}

// TestParseConfig_ReachesUser: a bad config makes grpc reject the service
// config with our message, and never panics.
func TestParseConfig_ReachesUser(t *testing.T) {
	_, err := grpc.NewClient("passthrough:///127.0.0.1:1",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"weighted_least_request":{"choiceCount":1}}]}`))
	if err == nil || !strings.Contains(err.Error(), "weighted_least_request: choiceCount: 1, must be >= 2") {
		t.Fatalf("NewClient error = %v, want the policy's validation error", err)
	}
}
