package fulcrumhttp

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig_Defaults(t *testing.T) {
	for _, js := range []string{"", " ", "{}"} {
		got, err := ParseConfig(js)
		if err != nil {
			t.Fatalf("ParseConfig(%q): %v", js, err)
		}
		want := DefaultConfig()
		if diff := cmp.Diff(want.Retry, got.Retry); diff != "" {
			t.Errorf("ParseConfig(%q).Retry (-want +got):\n%s", js, diff)
		}
		if !cmp.Equal(got.FailureStatuses, []int{502, 503, 504}) || got.MaxRetryAfter != 30*time.Second ||
			got.ProbePath != "" || !got.NotFoundIsHealthy || got.H2C || got.MaxIdleConnsPerEndpoint != 64 ||
			got.IdleConnTimeout != 90*time.Second || got.LB.ChoiceCount != 2 || got.probing() {
			t.Errorf("ParseConfig(%q) = %+v, want the documented defaults", js, got)
		}
	}
}

func TestParseConfig_Fields(t *testing.T) {
	got, err := ParseConfig(`{"choiceCount":3,"h2c":true,"maxIdleConnsPerEndpoint":8,"idleConnTimeout":"5s",
		"breaker":{"consecutiveFailures":2,"failureStatuses":[500,503],"maxRetryAfter":"1s"},
		"healthProbe":{"path":"/healthz","interval":"50ms","timeout":"20ms","notFoundIsHealthy":false,"scheme":"https"},
		"retry":{"maxAttempts":3,"statuses":[503],"budgetPercent":50,"minRetriesPerSecond":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := RetryConfig{MaxAttempts: 3, Statuses: []int{503}, BudgetPercent: 50, MinRetriesPerSecond: 1}
	if diff := cmp.Diff(want, got.Retry); diff != "" {
		t.Errorf("Retry (-want +got):\n%s", diff)
	}
	if got.LB.ChoiceCount != 3 || got.LB.Breaker.ConsecutiveFailures != 2 || time.Duration(got.LB.HealthProbe.Interval) != 50*time.Millisecond {
		t.Errorf("shared fields not applied: %+v", got.LB)
	}
	if !got.H2C || got.MaxIdleConnsPerEndpoint != 8 || got.IdleConnTimeout != 5*time.Second ||
		!cmp.Equal(got.FailureStatuses, []int{500, 503}) || got.MaxRetryAfter != time.Second ||
		got.ProbePath != "/healthz" || got.NotFoundIsHealthy || got.ProbeScheme != "https" || !got.probing() {
		t.Errorf("HTTP fields not applied: %+v", got)
	}
}

func TestParseConfig_Errors(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`[]`, `fulcrumhttp: config: "[]", must be a JSON object`},
		{`{"choiceCount":1}`, "fulcrumhttp: choiceCount: 1, must be >= 2"},
		{`{"choiseCount":2}`, `fulcrumhttp: unknown field "choiseCount"`},
		{`{"breaker":{"failureCodes":["UNAVAILABLE"]}}`, `fulcrumhttp: breaker.failureCodes: ["UNAVAILABLE"], must be absent (gRPC only; use breaker.failureStatuses)`},
		{`{"healthProbe":{"service":"x"}}`, `fulcrumhttp: healthProbe.service: "x", must be absent (gRPC only; use healthProbe.path)`},
		{`{"breaker":{"failureStatuses":[503,404]}}`, "fulcrumhttp: breaker.failureStatuses[1]: 404, must be a 5xx status in [500, 599]"},
		{`{"retry":{"statuses":[429]}}`, "fulcrumhttp: retry.statuses[0]: 429, must be a 5xx status"},
		{`{"retry":{"maxAttempts":9}}`, "fulcrumhttp: retry.maxAttempts: 9, must be in [1, 5]"},
		{`{"retry":{"budgetPercent":120}}`, "fulcrumhttp: retry.budgetPercent: 120, must be in [0, 100]"},
		{`{"retry":{"minRetriesPerSecond":-1}}`, "fulcrumhttp: retry.minRetriesPerSecond: -1, must be in [0, 10000]"},
		{`{"retry":{"maxAttempts":"2"}}`, "fulcrumhttp: retry.maxAttempts: string, must be a number"},
		{`{"h2c":"yes"}`, "fulcrumhttp: h2c: string, must be true or false"},
		{`{"idleConnTimeout":"soon"}`, `must be a duration string like "5s"`},
		{`{"idleConnTimeout":"1ms"}`, "fulcrumhttp: idleConnTimeout: 1ms, must be in [1s, 1h0m0s]"},
		{`{"maxIdleConnsPerEndpoint":0}`, "fulcrumhttp: maxIdleConnsPerEndpoint: 0, must be in [1, 10000]"},
		{`{"healthProbe":{"path":"healthz"}}`, `fulcrumhttp: healthProbe.path: "healthz", must be a path starting with "/"`},
		{`{"healthProbe":{"scheme":"ftp"}}`, `fulcrumhttp: healthProbe.scheme: "ftp", must be "http", "https" or ""`},
		{`{"breaker":{"maxRetryAfter":"1h"}}`, "fulcrumhttp: breaker.maxRetryAfter: 1h0m0s, must be in [0s, 10m0s]"},
		{`{"breaker":7}`, "fulcrumhttp: breaker: 7, must be a JSON object"},
	} {
		_, err := ParseConfig(tc.js)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) error = %v, want it to contain %q", tc.js, err, tc.want)
		}
	}
}
