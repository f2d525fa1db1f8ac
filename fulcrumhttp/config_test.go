package fulcrumhttp

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfig_Defaults(t *testing.T) {
	for _, js := range []string{"", " ", "{}"} {
		got, err := parseConfig(js)
		if err != nil {
			t.Fatalf("parseConfig(%q): %v", js, err)
		}
		want := defaultConfig()
		if diff := cmp.Diff(want.Retry, got.Retry); diff != "" {
			t.Errorf("parseConfig(%q).Retry (-want +got):\n%s", js, diff)
		}
		if !cmp.Equal(got.Breaker.FailureStatuses, []int{502, 503, 504}) || time.Duration(got.Breaker.MaxRetryAfter) != 30*time.Second ||
			got.HealthProbe.Path != "" || !got.HealthProbe.NotFoundIsHealthy || got.H2C || got.MaxIdleConnsPerEndpoint != 64 ||
			time.Duration(got.IdleConnTimeout) != 90*time.Second || got.ChoiceCount != 2 || got.probing() {
			t.Errorf("parseConfig(%q) = %+v, want the documented defaults", js, got)
		}
	}
}

func TestParseConfig_Fields(t *testing.T) {
	got, err := parseConfig(`{"choiceCount":3,"h2c":true,"maxIdleConnsPerEndpoint":8,"idleConnTimeout":"5s",
		"breaker":{"consecutiveFailures":2,"failureStatuses":[500,503],"maxRetryAfter":"1s"},
		"healthProbe":{"path":"/healthz","interval":"50ms","timeout":"20ms","notFoundIsHealthy":false,"scheme":"https"},
		"retry":{"maxAttempts":3,"statuses":[503],"budgetPercent":50,"minRetriesPerSecond":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := retryConfig{MaxAttempts: 3, Statuses: []int{503}, BudgetPercent: 50, MinRetriesPerSecond: 1}
	if diff := cmp.Diff(want, got.Retry); diff != "" {
		t.Errorf("Retry (-want +got):\n%s", diff)
	}
	if got.ChoiceCount != 3 || got.Breaker.ConsecutiveFailures != 2 || time.Duration(got.HealthProbe.Interval) != 50*time.Millisecond {
		t.Errorf("shared fields not applied: %+v", got.shared())
	}
	if !got.H2C || got.MaxIdleConnsPerEndpoint != 8 || time.Duration(got.IdleConnTimeout) != 5*time.Second ||
		!cmp.Equal(got.Breaker.FailureStatuses, []int{500, 503}) || time.Duration(got.Breaker.MaxRetryAfter) != time.Second ||
		got.HealthProbe.Path != "/healthz" || got.HealthProbe.NotFoundIsHealthy || got.HealthProbe.Scheme != "https" || !got.probing() {
		t.Errorf("HTTP fields not applied: %+v", got)
	}
}

func TestParseConfig_Errors(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`[]`, `fulcrumhttp: config: [], must be a JSON object`},
		{`{"choiceCount":1}`, "fulcrumhttp: choiceCount: 1, must be >= 2"},
		{`{"breaker":{"failureCodes":["UNAVAILABLE"]}}`, `fulcrumhttp: breaker.failureCodes: must be absent (gRPC only; use breaker.failureStatuses)`},
		{`{"healthProbe":{"service":"x"}}`, `fulcrumhttp: healthProbe.service: must be absent (gRPC only; use healthProbe.path)`},
		{`{"breaker":{"failureStatuses":[503,404]}}`, "fulcrumhttp: breaker.failureStatuses[1]: 404, must be a 5xx status in [500, 599]"},
		{`{"retry":{"statuses":[404]}}`, "fulcrumhttp: retry.statuses[0]: 404, must be 408, 429 or a 5xx status"},
		{`{"retry":{"maxAttempts":9}}`, "fulcrumhttp: retry.maxAttempts: 9, must be in [1, 5]"},
		{`{"retry":{"budgetPercent":120}}`, "fulcrumhttp: retry.budgetPercent: 120, must be in [0, 100]"},
		{`{"retry":{"minRetriesPerSecond":-1}}`, "fulcrumhttp: retry.minRetriesPerSecond: -1, must be in [0, 10000]"},
		{`{"retry":{"maxAttempts":"2"}}`, `fulcrumhttp: retry.maxAttempts: "2", must be an integer`},
		{`{"h2c":"yes"}`, `fulcrumhttp: h2c: "yes", must be true or false`},
		{`{"idleConnTimeout":"soon"}`, `fulcrumhttp: idleConnTimeout: "soon", must be a duration string such as "5s"`},
		{`{"idleConnTimeout":"1ms"}`, "fulcrumhttp: idleConnTimeout: 1ms, must be in [1s, 1h0m0s]"},
		{`{"maxIdleConnsPerEndpoint":0}`, "fulcrumhttp: maxIdleConnsPerEndpoint: 0, must be in [1, 10000]"},
		{`{"healthProbe":{"path":"healthz"}}`, `fulcrumhttp: healthProbe.path: "healthz", must be a path starting with "/"`},
		{`{"healthProbe":{"scheme":"ftp"}}`, `fulcrumhttp: healthProbe.scheme: "ftp", must be "http", "https" or ""`},
		{`{"breaker":{"maxRetryAfter":"1h"}}`, "fulcrumhttp: breaker.maxRetryAfter: 1h0m0s, must be in [0s, 10m0s]"},
		{`{"breaker":7}`, "fulcrumhttp: breaker: 7, must be a JSON object"},
	} {
		_, err := parseConfig(tc.js)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseConfig(%s) error = %v, want it to contain %q", tc.js, err, tc.want)
		}
	}
}

// TestREADME_DefaultsMatch checks the defaults column of README's table of
// HTTP-only fields against defaultConfig.
func TestREADME_DefaultsMatch(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	d := defaultConfig()
	ints := func(s []int) string {
		var parts []string
		for _, v := range s {
			parts = append(parts, strconv.Itoa(v))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	dur := func(v time.Duration) string { return fmt.Sprintf("%q", v.String()) }
	want := map[string]string{
		"breaker.failureStatuses":       ints(d.Breaker.FailureStatuses),
		"breaker.maxRetryAfter":         dur(time.Duration(d.Breaker.MaxRetryAfter)),
		"healthProbe.path":              fmt.Sprintf("%q", d.HealthProbe.Path),
		"healthProbe.notFoundIsHealthy": strconv.FormatBool(d.HealthProbe.NotFoundIsHealthy),
		"healthProbe.scheme":            fmt.Sprintf("%q", d.HealthProbe.Scheme),
		"h2c":                           strconv.FormatBool(d.H2C),
		"maxIdleConnsPerEndpoint":       strconv.Itoa(d.MaxIdleConnsPerEndpoint),
		"idleConnTimeout":               dur(time.Duration(d.IdleConnTimeout)),
		"retry.maxAttempts":             strconv.Itoa(d.Retry.MaxAttempts),
		"retry.statuses":                ints(d.Retry.Statuses),
		"retry.budgetPercent":           strconv.FormatFloat(d.Retry.BudgetPercent, 'g', -1, 64),
		"retry.minRetriesPerSecond":     strconv.FormatFloat(d.Retry.MinRetriesPerSecond, 'g', -1, 64),
		"retry.perTryTimeout":           dur(time.Duration(d.Retry.PerTryTimeout)),
		"breaker.retryAfterStatuses":    ints(d.Breaker.RetryAfterStatuses),
		"http2":                         strconv.FormatBool(d.HTTP2),
		"hedging.enabled":               strconv.FormatBool(d.Hedging.Enabled),
		"hedging.maxAttempts":           strconv.Itoa(d.Hedging.MaxAttempts),
		"hedging.delay":                 dur(time.Duration(d.Hedging.Delay)),
		"hedging.minDelay":              dur(time.Duration(d.Hedging.MinDelay)),
		"hedging.maxExtraLoadPercent":   strconv.FormatFloat(d.Hedging.MaxExtraLoadPercent, 'g', -1, 64),
		"hedging.minHedgesPerSecond":    strconv.FormatFloat(d.Hedging.MinHedgesPerSecond, 'g', -1, 64),
	}
	row := regexp.MustCompile("(?m)^\\| `([a-zA-Z0-9.]+)` \\| `([^`]*)` \\|")
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		w, ok := want[m[1]]
		if !ok {
			t.Errorf("README documents %q, which is not an HTTP-only field", m[1])
			continue
		}
		seen[m[1]] = true
		if m[2] != w {
			t.Errorf("README: %s default %s, defaultConfig has %s", m[1], m[2], w)
		}
	}
	for f := range want {
		if !seen[f] {
			t.Errorf("README does not document %s", f)
		}
	}
}

// TestParseConfig_ForwardCompatible: as for the gRPC policy, a field this
// version does not know is ignored (with a warning), so a config written
// for a newer release does not break an older client.
func TestParseConfig_ForwardCompatible(t *testing.T) {
	cfg, err := parseConfig(`{"choiseCount":3,"breaker":{"nope":1},"choiceCount":11}`)
	if err != nil {
		t.Fatalf("parseConfig with unknown fields: %v, want them ignored", err)
	}
	if cfg.ChoiceCount != 10 {
		t.Errorf("choiceCount 11 became %d, want 10 (gRFC A48's clamp)", cfg.ChoiceCount)
	}
}
