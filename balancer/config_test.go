package balancer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/picker"
)

func ms(n float64) config.Duration { return config.Duration(n * float64(time.Millisecond)) }

// documented is the documented default configuration, written out here
// rather than read back from DefaultConfig, so that a changed default fails
// the test that pins it.
func documented() *LBConfig {
	return &LBConfig{
		PickerConfig: picker.Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: ms(3000)},
		EndpointSetConfig: endpointset.Config{PanicThresholdPercent: 50, MaxEjectionPercent: 50,
			SlowStart: endpointset.SlowStartConfig{Window: ms(10000), Aggression: 1, MinWeightPercent: 10}},
		Breaker: BreakerConfig{
			Config: breaker.Config{Enabled: true, ConsecutiveFailures: 5, FailureRatio: 0.5, MinRequests: 20,
				Window: ms(10000), OpenDuration: ms(5000), MaxOpenDuration: ms(120000), HalfOpenRequests: 3, TrialTimeout: ms(10000)},
			FailureCodes: []string{"UNAVAILABLE", "INTERNAL", "DATA_LOSS", "RESOURCE_EXHAUSTED"},
		},
		HealthProbe: healthprobe.GRPCConfig{
			Config: healthprobe.Config{Enabled: true, Interval: ms(500), Timeout: ms(250), Jitter: 0.2,
				UnhealthyThreshold: 2, HealthyThreshold: 2, Warmup: true, MaxProbesPerSecond: 200},
			UnimplementedIsHealthy: true,
		},
	}
}

type parseCase struct {
	name         string
	input        string
	want         *LBConfig // nil when wantErr is set
	wantWarnings []string
	wantErr      string // the whole error text
}

// at builds a config object setting one field, by dotted path.
func at(path, value string) string {
	parts := strings.Split(path, ".")
	s := value
	for i := len(parts) - 1; i >= 0; i-- {
		s = `{"` + parts[i] + `":` + s + `}`
	}
	return s
}

// accept is a case where value at path is accepted and set does the same
// to the documented defaults.
func accept(path, value string, set func(c *LBConfig)) parseCase {
	want := documented()
	set(want)
	return parseCase{name: path + "=" + value, input: at(path, value), want: want}
}

// reject is a case where value at path is rejected with wantErr (without
// the policy's name).
func reject(path, value, wantErr string) parseCase {
	return parseCase{name: path + "=" + value, input: at(path, value), wantErr: Name + ": " + wantErr}
}

// TestParseConfig pins every documented default and bound with literal
// values: each bound accepted, just outside it rejected, wrong types and
// malformed values rejected with the field's path, unknown fields ignored
// with a warning.
func TestParseConfig(t *testing.T) {
	tests := []parseCase{
		{name: "empty object", input: `{}`, want: documented()},
		{name: "empty input", input: ``, want: documented()},
		{name: "null", input: `null`, want: documented()},
		{name: "null sub-objects", input: `{"breaker":null,"healthProbe":null,"slowStart":null}`, want: documented()},

		accept("choiceCount", `2`, func(c *LBConfig) { c.ChoiceCount = 2 }),
		accept("choiceCount", `10`, func(c *LBConfig) { c.ChoiceCount = 10 }),
		reject("choiceCount", `1`, "choiceCount: 1, must be >= 2"),
		reject("choiceCount", `-3`, "choiceCount: -3, must be >= 2"),
		{name: "choiceCount=11 clamped", input: `{"choiceCount":11}`, want: func() *LBConfig { c := documented(); c.ChoiceCount = 10; return c }(),
			wantWarnings: []string{"weighted_least_request: choiceCount: 11, above 10: using 10 (gRFC A48)"}},
		reject("choiceCount", `"2"`, `choiceCount: "2", must be an integer`),
		reject("choiceCount", `2.5`, `choiceCount: 2.5, must be an integer`),
		accept("activeRequestBias", `0`, func(c *LBConfig) { c.ActiveRequestBias = 0 }),
		accept("activeRequestBias", `10`, func(c *LBConfig) { c.ActiveRequestBias = 10 }),
		reject("activeRequestBias", `-0.001`, "activeRequestBias: -0.001, must be in [0, 10]"),
		reject("activeRequestBias", `10.001`, "activeRequestBias: 10.001, must be in [0, 10]"),
		reject("activeRequestBias", `"1"`, `activeRequestBias: "1", must be a number`),
		accept("latencyAware", `false`, func(c *LBConfig) { c.LatencyAware = false }),
		reject("latencyAware", `"yes"`, `latencyAware: "yes", must be true or false`),
		accept("latencyDecay", `"100ms"`, func(c *LBConfig) { c.LatencyDecay = ms(100) }),
		accept("latencyDecay", `"10m"`, func(c *LBConfig) { c.LatencyDecay = ms(600000) }),
		accept("latencyDecay", `"1.5s"`, func(c *LBConfig) { c.LatencyDecay = ms(1500) }),
		reject("latencyDecay", `"99ms"`, "latencyDecay: 99ms, must be in [100ms, 10m0s]"),
		reject("latencyDecay", `"10m0.001s"`, "latencyDecay: 10m0.001s, must be in [100ms, 10m0s]"),
		reject("latencyDecay", `"soon"`, `latencyDecay: "soon", must be a duration string such as "5s"`),
		reject("latencyDecay", `5`, `latencyDecay: 5, must be a duration string such as "5s"`),
		accept("panicThresholdPercent", `0`, func(c *LBConfig) { c.PanicThresholdPercent = 0 }),
		accept("panicThresholdPercent", `100`, func(c *LBConfig) { c.PanicThresholdPercent = 100 }),
		reject("panicThresholdPercent", `-0.1`, "panicThresholdPercent: -0.1, must be in [0, 100]"),
		reject("panicThresholdPercent", `100.1`, "panicThresholdPercent: 100.1, must be in [0, 100]"),
		accept("maxEjectionPercent", `0`, func(c *LBConfig) { c.MaxEjectionPercent = 0 }),
		accept("maxEjectionPercent", `100`, func(c *LBConfig) { c.MaxEjectionPercent = 100 }),
		reject("maxEjectionPercent", `-1`, "maxEjectionPercent: -1, must be in [0, 100]"),
		reject("maxEjectionPercent", `101`, "maxEjectionPercent: 101, must be in [0, 100]"),

		accept("breaker.enabled", `false`, func(c *LBConfig) { c.Breaker.Enabled = false }),
		reject("breaker.enabled", `1`, "breaker.enabled: 1, must be true or false"),
		accept("breaker.consecutiveFailures", `0`, func(c *LBConfig) { c.Breaker.ConsecutiveFailures = 0 }),
		accept("breaker.consecutiveFailures", `1000`, func(c *LBConfig) { c.Breaker.ConsecutiveFailures = 1000 }),
		reject("breaker.consecutiveFailures", `-1`, "breaker.consecutiveFailures: -1, must be in [0, 1000]"),
		reject("breaker.consecutiveFailures", `1001`, "breaker.consecutiveFailures: 1001, must be in [0, 1000]"),
		accept("breaker.failureRatio", `0`, func(c *LBConfig) { c.Breaker.FailureRatio = 0 }),
		accept("breaker.failureRatio", `1`, func(c *LBConfig) { c.Breaker.FailureRatio = 1 }),
		reject("breaker.failureRatio", `-0.01`, "breaker.failureRatio: -0.01, must be in [0, 1]"),
		reject("breaker.failureRatio", `1.01`, "breaker.failureRatio: 1.01, must be in [0, 1]"),
		{name: "breaker without trigger", input: `{"breaker":{"consecutiveFailures":0,"failureRatio":0}}`,
			wantErr: "weighted_least_request: breaker.consecutiveFailures: 0, must be > 0 when failureRatio is 0 and the breaker is enabled (set enabled: false instead)"},
		{name: "disabled breaker without trigger", input: `{"breaker":{"enabled":false,"consecutiveFailures":0,"failureRatio":0}}`,
			want: func() *LBConfig {
				c := documented()
				c.Breaker.Enabled, c.Breaker.ConsecutiveFailures, c.Breaker.FailureRatio = false, 0, 0
				return c
			}()},
		accept("breaker.minRequests", `1`, func(c *LBConfig) { c.Breaker.MinRequests = 1 }),
		accept("breaker.minRequests", `1000000`, func(c *LBConfig) { c.Breaker.MinRequests = 1000000 }),
		reject("breaker.minRequests", `0`, "breaker.minRequests: 0, must be in [1, 1000000]"),
		reject("breaker.minRequests", `1000001`, "breaker.minRequests: 1000001, must be in [1, 1000000]"),
		accept("breaker.window", `"1s"`, func(c *LBConfig) { c.Breaker.Window = ms(1000) }),
		accept("breaker.window", `"10m"`, func(c *LBConfig) { c.Breaker.Window = ms(600000) }),
		reject("breaker.window", `"999ms"`, "breaker.window: 999ms, must be in [1s, 10m0s]"),
		reject("breaker.window", `"10m0.001s"`, "breaker.window: 10m0.001s, must be in [1s, 10m0s]"),
		accept("breaker.openDuration", `"10ms"`, func(c *LBConfig) { c.Breaker.OpenDuration = ms(10) }),
		reject("breaker.openDuration", `"9ms"`, "breaker.openDuration: 9ms, must be in [10ms, 1h0m0s]"),
		{name: "breaker.openDuration=1h", input: `{"breaker":{"openDuration":"1h","maxOpenDuration":"1h"}}`,
			want: func() *LBConfig {
				c := documented()
				c.Breaker.OpenDuration, c.Breaker.MaxOpenDuration = ms(3600000), ms(3600000)
				return c
			}()},
		{name: "breaker.openDuration=1h0m0.001s", input: `{"breaker":{"openDuration":"1h0m0.001s","maxOpenDuration":"2h"}}`,
			wantErr: "weighted_least_request: breaker.openDuration: 1h0m0.001s, must be in [10ms, 1h0m0s]"},
		accept("breaker.maxOpenDuration", `"5s"`, func(c *LBConfig) { c.Breaker.MaxOpenDuration = ms(5000) }),
		accept("breaker.maxOpenDuration", `"24h"`, func(c *LBConfig) { c.Breaker.MaxOpenDuration = ms(24 * 3600000) }),
		reject("breaker.maxOpenDuration", `"4.999s"`, "breaker.maxOpenDuration: 4.999s, must be in [5s, 24h0m0s]"),
		reject("breaker.maxOpenDuration", `"24h0m0.001s"`, "breaker.maxOpenDuration: 24h0m0.001s, must be in [5s, 24h0m0s]"),
		accept("breaker.halfOpenRequests", `1`, func(c *LBConfig) { c.Breaker.HalfOpenRequests = 1 }),
		accept("breaker.halfOpenRequests", `100`, func(c *LBConfig) { c.Breaker.HalfOpenRequests = 100 }),
		reject("breaker.halfOpenRequests", `0`, "breaker.halfOpenRequests: 0, must be in [1, 100]"),
		reject("breaker.halfOpenRequests", `101`, "breaker.halfOpenRequests: 101, must be in [1, 100]"),
		accept("breaker.trialTimeout", `"10ms"`, func(c *LBConfig) { c.Breaker.TrialTimeout = ms(10) }),
		accept("breaker.trialTimeout", `"1h"`, func(c *LBConfig) { c.Breaker.TrialTimeout = ms(3600000) }),
		reject("breaker.trialTimeout", `"9ms"`, "breaker.trialTimeout: 9ms, must be in [10ms, 1h0m0s]"),
		reject("breaker.trialTimeout", `"1h0m0.001s"`, "breaker.trialTimeout: 1h0m0.001s, must be in [10ms, 1h0m0s]"),
		accept("breaker.failureCodes", `["unavailable","Deadline_Exceeded","CANCELLED","CANCELED"]`, func(c *LBConfig) {
			c.Breaker.FailureCodes = []string{"unavailable", "Deadline_Exceeded", "CANCELLED", "CANCELED"}
		}),
		accept("breaker.failureCodes", `[]`, func(c *LBConfig) { c.Breaker.FailureCodes = []string{} }),
		accept("breaker.failureCodes", `null`, func(*LBConfig) {}),
		reject("breaker.failureCodes", `["UNAVAILABLE","NOPE"]`, `breaker.failureCodes[1]: "NOPE", must be a non-OK gRPC status code name such as "UNAVAILABLE"`),
		reject("breaker.failureCodes", `["OK"]`, `breaker.failureCodes[0]: "OK", must be a non-OK gRPC status code name such as "UNAVAILABLE"`),
		reject("breaker.failureCodes", `"UNAVAILABLE"`, `breaker.failureCodes: "UNAVAILABLE", must be a list of strings`),
		reject("breaker.failureCodes", `[14]`, `breaker.failureCodes: [14], must be a list of strings`),
		reject("breaker", `[]`, `breaker: [], must be a JSON object`),

		accept("healthProbe.enabled", `false`, func(c *LBConfig) { c.HealthProbe.Enabled = false }),
		accept("healthProbe.service", `"pkg.Svc"`, func(c *LBConfig) { c.HealthProbe.Service = "pkg.Svc" }),
		reject("healthProbe.service", `1`, "healthProbe.service: 1, must be a string"),
		{name: "healthProbe.interval=10ms", input: `{"healthProbe":{"interval":"10ms","timeout":"1ms"}}`,
			want: func() *LBConfig {
				c := documented()
				c.HealthProbe.Interval, c.HealthProbe.Timeout = ms(10), ms(1)
				return c
			}()},
		accept("healthProbe.interval", `"1h"`, func(c *LBConfig) { c.HealthProbe.Interval = ms(3600000) }),
		{name: "healthProbe.interval=9ms", input: `{"healthProbe":{"interval":"9ms","timeout":"1ms"}}`,
			wantErr: "weighted_least_request: healthProbe.interval: 9ms, must be in [10ms, 1h0m0s]"},
		reject("healthProbe.interval", `"1h0m0.001s"`, "healthProbe.interval: 1h0m0.001s, must be in [10ms, 1h0m0s]"),
		accept("healthProbe.timeout", `"1ms"`, func(c *LBConfig) { c.HealthProbe.Timeout = ms(1) }),
		accept("healthProbe.timeout", `"500ms"`, func(c *LBConfig) { c.HealthProbe.Timeout = ms(500) }),
		reject("healthProbe.timeout", `"999us"`, "healthProbe.timeout: 999µs, must be in [1ms, 500ms]"),
		reject("healthProbe.timeout", `"500.001ms"`, "healthProbe.timeout: 500.001ms, must be in [1ms, 500ms]"),
		accept("healthProbe.jitter", `0`, func(c *LBConfig) { c.HealthProbe.Jitter = 0 }),
		accept("healthProbe.jitter", `0.5`, func(c *LBConfig) { c.HealthProbe.Jitter = 0.5 }),
		reject("healthProbe.jitter", `-0.01`, "healthProbe.jitter: -0.01, must be in [0, 0.5]"),
		reject("healthProbe.jitter", `0.51`, "healthProbe.jitter: 0.51, must be in [0, 0.5]"),
		accept("healthProbe.unhealthyThreshold", `1`, func(c *LBConfig) { c.HealthProbe.UnhealthyThreshold = 1 }),
		accept("healthProbe.unhealthyThreshold", `100`, func(c *LBConfig) { c.HealthProbe.UnhealthyThreshold = 100 }),
		reject("healthProbe.unhealthyThreshold", `0`, "healthProbe.unhealthyThreshold: 0, must be in [1, 100]"),
		reject("healthProbe.unhealthyThreshold", `101`, "healthProbe.unhealthyThreshold: 101, must be in [1, 100]"),
		accept("healthProbe.healthyThreshold", `1`, func(c *LBConfig) { c.HealthProbe.HealthyThreshold = 1 }),
		accept("healthProbe.healthyThreshold", `100`, func(c *LBConfig) { c.HealthProbe.HealthyThreshold = 100 }),
		reject("healthProbe.healthyThreshold", `0`, "healthProbe.healthyThreshold: 0, must be in [1, 100]"),
		reject("healthProbe.healthyThreshold", `101`, "healthProbe.healthyThreshold: 101, must be in [1, 100]"),
		accept("healthProbe.warmup", `false`, func(c *LBConfig) { c.HealthProbe.Warmup = false }),
		reject("healthProbe.warmup", `"yes"`, `healthProbe.warmup: "yes", must be true or false`),
		accept("healthProbe.unimplementedIsHealthy", `false`, func(c *LBConfig) { c.HealthProbe.UnimplementedIsHealthy = false }),

		accept("slowStart.window", `"0s"`, func(c *LBConfig) { c.SlowStart.Window = 0 }),
		accept("slowStart.window", `"1h"`, func(c *LBConfig) { c.SlowStart.Window = ms(3600000) }),
		reject("slowStart.window", `"-1ns"`, "slowStart.window: -1ns, must be in [0s, 1h0m0s]"),
		reject("slowStart.window", `"1h0m0.001s"`, "slowStart.window: 1h0m0.001s, must be in [0s, 1h0m0s]"),
		accept("slowStart.aggression", `0.001`, func(c *LBConfig) { c.SlowStart.Aggression = 0.001 }),
		accept("slowStart.aggression", `10`, func(c *LBConfig) { c.SlowStart.Aggression = 10 }),
		reject("slowStart.aggression", `0`, "slowStart.aggression: 0, must be in (0, 10]"),
		reject("slowStart.aggression", `10.01`, "slowStart.aggression: 10.01, must be in (0, 10]"),
		accept("slowStart.minWeightPercent", `1`, func(c *LBConfig) { c.SlowStart.MinWeightPercent = 1 }),
		accept("slowStart.minWeightPercent", `100`, func(c *LBConfig) { c.SlowStart.MinWeightPercent = 100 }),
		reject("slowStart.minWeightPercent", `0.99`, "slowStart.minWeightPercent: 0.99, must be in [1, 100]"),
		reject("slowStart.minWeightPercent", `100.01`, "slowStart.minWeightPercent: 100.01, must be in [1, 100]"),

		{name: "unknown fields at every depth", input: `{"choiseCount":3,"breaker":{"nope":1,"window":"20s"},"slowStart":{"x":{"y":2}}}`,
			want: func() *LBConfig { c := documented(); c.Breaker.Window = ms(20000); return c }(),
			wantWarnings: []string{
				`weighted_least_request: unknown field "breaker.nope" ignored`,
				`weighted_least_request: unknown field "choiseCount" ignored`,
				`weighted_least_request: unknown field "slowStart.x" ignored`,
			}},
		{name: "other letter case is unknown", input: `{"ChoiceCount":3}`, want: documented(),
			wantWarnings: []string{`weighted_least_request: unknown field "ChoiceCount" ignored`}},
		{name: "unknown field beside a bad value", input: `{"future":true,"choiceCount":1}`,
			wantWarnings: []string{`weighted_least_request: unknown field "future" ignored`},
			wantErr:      "weighted_least_request: choiceCount: 1, must be >= 2"},
		{name: "several errors", input: `{"choiceCount":"x","breaker":{"window":5},"healthProbe":{"jitter":true}}`,
			wantErr: "weighted_least_request: breaker.window: 5, must be a duration string such as \"5s\"\n" +
				"weighted_least_request: choiceCount: \"x\", must be an integer\n" +
				"weighted_least_request: healthProbe.jitter: true, must be a number"},
		{name: "several bounds", input: `{"choiceCount":1,"breaker":{"halfOpenRequests":0},"slowStart":{"aggression":0}}`,
			wantErr: "weighted_least_request: choiceCount: 1, must be >= 2\n" +
				"weighted_least_request: slowStart.aggression: 0, must be in (0, 10]\n" +
				"weighted_least_request: breaker.halfOpenRequests: 0, must be in [1, 100]"},
		{name: "not an object", input: `[1]`, wantErr: "weighted_least_request: config: [1], must be a JSON object"},
		{name: "bad JSON", input: `{"choiceCount":`, wantErr: "weighted_least_request: config: invalid JSON: unexpected end of JSON input"},
		{name: "trailing data", input: `{} {}`, wantErr: "weighted_least_request: config: invalid JSON: invalid character '{' after top-level value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := parse([]byte(tc.input))
			if diff := cmp.Diff(tc.wantWarnings, warnings); diff != "" {
				t.Errorf("parse(%s) warnings diff (-want +got):\n%s", tc.input, diff)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("parse(%s) error = %v, want %q", tc.input, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%s) failed: %v", tc.input, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(LBConfig{}, "LoadBalancingConfig")); diff != "" {
				t.Errorf("parse(%s) diff (-want +got):\n%s", tc.input, diff)
			}
		})
	}
}

// TestDefaultConfig_IsDocumented: DefaultConfig is the documented defaults
// and is valid as it is.
func TestDefaultConfig_IsDocumented(t *testing.T) {
	if diff := cmp.Diff(documented(), DefaultConfig(), cmpopts.IgnoreFields(LBConfig{}, "LoadBalancingConfig")); diff != "" {
		t.Errorf("DefaultConfig() diff (-want +got):\n%s", diff)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	// Each call returns its own FailureCodes: changing one must not change
	// the next.
	DefaultConfig().Breaker.FailureCodes[0] = "CHANGED"
	if got := DefaultConfig().Breaker.FailureCodes[0]; got != "UNAVAILABLE" {
		t.Errorf("DefaultConfig() shares its FailureCodes: got %q after a change to another copy", got)
	}
}

// TestDefaultConfig_FailureMask: a DefaultConfig handed to the policy
// without any parsing counts the documented codes as failures, and a
// breaker built from it trips on them.
func TestDefaultConfig_FailureMask(t *testing.T) {
	bc := DefaultConfig().Breaker
	mask := bc.FailureMask()
	for _, c := range []codes.Code{codes.Unavailable, codes.Internal, codes.DataLoss, codes.ResourceExhausted} {
		if mask&(1<<uint32(c)) == 0 {
			t.Errorf("default failure mask %b lacks %v", mask, c)
		}
	}
	for _, c := range []codes.Code{codes.OK, codes.Canceled, codes.DeadlineExceeded, codes.Unknown, codes.NotFound} {
		if mask&(1<<uint32(c)) != 0 {
			t.Errorf("default failure mask %b has %v", mask, c)
		}
	}
	b := breaker.New(bc.Config, func() int64 { return 0 }, nil)
	for range bc.ConsecutiveFailures {
		tk, ok := b.Allow()
		if !ok {
			t.Fatal("breaker open before the fifth failure")
		}
		b.Record(tk, mask&(1<<uint32(codes.Unavailable)) == 0) // UNAVAILABLE: a failure
	}
	if got := b.State(); got != breaker.Open {
		t.Errorf("breaker after %d UNAVAILABLE: %v, want open", bc.ConsecutiveFailures, got)
	}

	custom := BreakerConfig{FailureCodes: []string{"cancelled", "DEADLINE_EXCEEDED", "NOPE", "OK"}}
	if got, want := custom.FailureMask(), uint32(1<<1|1<<4); got != want {
		t.Errorf("FailureMask() of %v = %b, want %b (unknown names and OK left out)", custom.FailureCodes, got, want)
	}
}

// TestParseConfig_WarnsOncePerField: an unknown field is logged once per
// distinct path per process, however often the config arrives.
func TestParseConfig_WarnsOncePerField(t *testing.T) {
	var logged []string
	defer func(old func(...any)) { warnf = old }(warnf)
	warnf = func(args ...any) { logged = append(logged, args[0].(string)) }
	// A record of this test's own, so that -count=N starts afresh (the
	// process-wide one made the second run log nothing).
	defer func(old *config.Once) { warnOnce = old }(warnOnce)
	warnOnce = &config.Once{}

	for range 3 {
		if _, err := parseConfig([]byte(`{"onceA":1,"breaker":{"onceB":2}}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := parseConfig([]byte(`{"breaker":{"onceB":3},"healthProbe":{"onceB":4}}`)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`weighted_least_request: unknown field "breaker.onceB" ignored`,
		`weighted_least_request: unknown field "onceA" ignored`,
		`weighted_least_request: unknown field "healthProbe.onceB" ignored`,
	}
	if diff := cmp.Diff(want, logged); diff != "" {
		t.Errorf("warnings logged diff (-want +got):\n%s", diff)
	}
}

// TestLBConfig_JSON: the defaults marshal to the documented JSON names
// with duration strings, and parse back to themselves.
func TestLBConfig_JSON(t *testing.T) {
	b, err := json.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"choiceCount":2,"activeRequestBias":1,"latencyAware":true,"latencyDecay":"3s",` +
		`"panicThresholdPercent":50,"maxEjectionPercent":50,"slowStart":{"window":"10s","aggression":1,"minWeightPercent":10},"localZone":"",` +
		`"breaker":{"enabled":true,"consecutiveFailures":5,"failureRatio":0.5,"minRequests":20,"window":"10s","openDuration":"5s",` +
		`"maxOpenDuration":"2m0s","halfOpenRequests":3,"trialTimeout":"10s","failureCodes":["UNAVAILABLE","INTERNAL","DATA_LOSS","RESOURCE_EXHAUSTED"]},` +
		`"healthProbe":{"enabled":true,"interval":"500ms","timeout":"250ms","jitter":0.2,"unhealthyThreshold":2,"healthyThreshold":2,` +
		`"warmup":true,"maxProbesPerSecond":200,"service":"","unimplementedIsHealthy":true}}`
	if string(b) != want {
		t.Errorf("json.Marshal(DefaultConfig()) =\n%s\nwant\n%s", b, want)
	}
	got, warnings, err := parse(b)
	if err != nil || warnings != nil {
		t.Fatalf("parse(marshalled defaults) = %v, %v", warnings, err)
	}
	if diff := cmp.Diff(documented(), got, cmpopts.IgnoreFields(LBConfig{}, "LoadBalancingConfig")); diff != "" {
		t.Errorf("round trip diff (-want +got):\n%s", diff)
	}
}

// TestParseConfig_ReachesUser: grpc rejects a bad service config with our
// message, and accepts one with unknown fields.
func TestParseConfig_ReachesUser(t *testing.T) {
	_, err := grpc.NewClient("passthrough:///127.0.0.1:1",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"weighted_least_request":{"choiceCount":1}}]}`))
	if err == nil || !strings.Contains(err.Error(), "weighted_least_request: choiceCount: 1, must be >= 2") {
		t.Fatalf("NewClient error = %v, want the policy's validation error", err)
	}
	cc, err := grpc.NewClient("passthrough:///127.0.0.1:1",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"weighted_least_request":{"fromTheFuture":{"x":1},"choiceCount":12}}]}`))
	if err != nil {
		t.Fatalf("NewClient with an unknown field and choiceCount 12: %v, want accepted", err)
	}
	cc.Close()
}
