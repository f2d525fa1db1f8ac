package fulcrumhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"

	fbalancer "github.com/fulcrum-lb/fulcrum/balancer"
)

// config is the parsed configuration of a Transport. The fields shared with
// the gRPC policy are the weighted_least_request policy's own config type,
// parsed and validated by that policy's parser: one definition of every
// shared field, its default and its bounds.
type config struct {
	// LB holds the fields shared with the weighted_least_request policy
	// (selection, panic mode, ejection cap, breaker, healthProbe timing,
	// slowStart). The gRPC-only fields breaker.failureCodes,
	// healthProbe.service and healthProbe.unimplementedIsHealthy are
	// rejected: HTTP uses the fields below instead.
	LB *fbalancer.LBConfig

	// FailureStatuses are the response statuses that count as a breaker
	// failure (JSON breaker.failureStatuses). Default 502, 503, 504; each
	// must be in [500, 599]: a 4xx is the caller's problem, never the
	// endpoint's.
	FailureStatuses []int
	// MaxRetryAfter caps how long a Retry-After (on a status of
	// breaker.retryAfterStatuses, attemptconfig.go) makes selection prefer
	// other endpoints (JSON breaker.maxRetryAfter). Default 30s, bounds
	// [0, 10m]; 0 ignores the header.
	MaxRetryAfter time.Duration

	// ProbePath is the path of the active health probe, GET on every
	// endpoint (JSON healthProbe.path). Default "": no probing, because
	// HTTP has no standard health endpoint. Must start with "/".
	ProbePath string
	// NotFoundIsHealthy says what a 404 to the probe means (JSON
	// healthProbe.notFoundIsHealthy): true (default) takes it for a server
	// without a health endpoint, counted healthy with one logged warning;
	// false counts it as a failed probe.
	NotFoundIsHealthy bool
	// ProbeScheme is "http" or "https" (JSON healthProbe.scheme). Default
	// "": https when WithTLSConfig is given, http otherwise.
	ProbeScheme string

	// H2C sends http:// requests as HTTP/2 with prior knowledge (h2c)
	// instead of HTTP/1.1 (JSON h2c). Default false. https:// requests
	// negotiate HTTP/2 through ALPN either way; with h2c on they require it.
	H2C bool
	// MaxIdleConnsPerEndpoint is the idle HTTP/1.1 connections kept per
	// endpoint (JSON maxIdleConnsPerEndpoint). Default 64, bounds
	// [1, 10000]; net/http's default of 2 per host makes every burst above
	// 2 concurrent requests dial.
	MaxIdleConnsPerEndpoint int
	// IdleConnTimeout closes idle connections after this long (JSON
	// idleConnTimeout). Default 90s, bounds [1s, 1h].
	IdleConnTimeout time.Duration

	Retry retryConfig
}

// retryConfig is the retry policy (JSON retry).
type retryConfig struct {
	// MaxAttempts is the number of attempts of one request, the first
	// included (JSON retry.maxAttempts). Default 2, bounds [1, 5]; 1
	// disables retries.
	MaxAttempts int
	// Statuses are the response statuses retried on another endpoint
	// (JSON retry.statuses). Default 502, 503, 504; each 408, 429 or in
	// [500, 599].
	Statuses []int
	// BudgetPercent of the requests of the last 10 seconds may be retried
	// (JSON retry.budgetPercent), on top of MinRetriesPerSecond. Default
	// 20 (Finagle's and Envoy's), bounds [0, 100].
	BudgetPercent float64
	// MinRetriesPerSecond is the floor of the budget, so that a client
	// sending few requests can still retry (JSON retry.minRetriesPerSecond).
	// Default 10 (Finagle's), bounds [0, 10000].
	MinRetriesPerSecond float64
}

// httpOnly is the JSON of the fields only HTTP has.
type httpOnly struct {
	H2C                     *bool   `json:"h2c"`
	MaxIdleConnsPerEndpoint *int    `json:"maxIdleConnsPerEndpoint"`
	IdleConnTimeout         *string `json:"idleConnTimeout"`
	Retry                   *struct {
		MaxAttempts         *int     `json:"maxAttempts"`
		Statuses            []int    `json:"statuses"`
		BudgetPercent       *float64 `json:"budgetPercent"`
		MinRetriesPerSecond *float64 `json:"minRetriesPerSecond"`
	} `json:"retry"`
	Breaker struct {
		FailureStatuses []int   `json:"failureStatuses"`
		MaxRetryAfter   *string `json:"maxRetryAfter"`
	} `json:"-"`
	HealthProbe struct {
		Path              *string `json:"path"`
		NotFoundIsHealthy *bool   `json:"notFoundIsHealthy"`
		Scheme            *string `json:"scheme"`
	} `json:"-"`
}

// Keys moved out of the shared JSON before the policy's parser sees it.
var (
	httpTopKeys     = []string{"h2c", "maxIdleConnsPerEndpoint", "idleConnTimeout", "retry"}
	httpBreakerKeys = []string{"failureStatuses", "maxRetryAfter"}
	httpProbeKeys   = []string{"path", "notFoundIsHealthy", "scheme"}
	// gRPC-only fields and what HTTP uses instead.
	grpcOnly = map[string]string{
		"breaker.failureCodes":               "breaker.failureStatuses",
		"healthProbe.service":                "healthProbe.path",
		"healthProbe.unimplementedIsHealthy": "healthProbe.notFoundIsHealthy",
	}
)

var defaultStatuses = []int{502, 503, 504}

// defaultConfig returns the configuration used for every field the JSON
// leaves out.
func defaultConfig() *config {
	return &config{
		LB:                      fbalancer.DefaultConfig(),
		FailureStatuses:         slices.Clone(defaultStatuses),
		MaxRetryAfter:           30 * time.Second,
		NotFoundIsHealthy:       true,
		MaxIdleConnsPerEndpoint: 64,
		IdleConnTimeout:         90 * time.Second,
		Retry: retryConfig{
			MaxAttempts:         2,
			Statuses:            slices.Clone(defaultStatuses),
			BudgetPercent:       20,
			MinRetriesPerSecond: 10,
		},
	}
}

// parseConfig parses the JSON of WithConfig: the fields of the
// weighted_least_request policy plus the HTTP-only fields. Errors read
// "fulcrumhttp: <field>: <value>, must be <constraint>".
func parseConfig(js string) (*config, error) {
	cfg := defaultConfig()
	shared, only, err := splitConfig([]byte(js))
	if err != nil {
		return nil, err
	}
	parser, ok := grpcbalancer.Get(fbalancer.Name).(grpcbalancer.ConfigParser)
	if !ok {
		return nil, errors.New("fulcrumhttp: the weighted_least_request policy is not registered")
	}
	lb, err := parser.ParseConfig(shared)
	if err != nil {
		// One wording across the project, with this package's prefix.
		return nil, errors.New(strings.ReplaceAll(err.Error(), fbalancer.Name+": ", "fulcrumhttp: "))
	}
	cfg.LB = lb.(*fbalancer.LBConfig)
	if err := cfg.apply(only); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// splitConfig separates the HTTP-only fields from the shared ones and
// rejects the gRPC-only ones.
func splitConfig(js []byte) (shared json.RawMessage, only httpOnly, err error) {
	if len(bytes.TrimSpace(js)) == 0 {
		return nil, only, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		return nil, only, fmt.Errorf("fulcrumhttp: config: %.40q, must be a JSON object", js)
	}
	take := func(m map[string]json.RawMessage, keys []string) map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for _, k := range keys {
			if v, ok := m[k]; ok {
				out[k] = v
				delete(m, k)
			}
		}
		return out
	}
	strict := func(field string, m map[string]json.RawMessage, into any) error {
		b, _ := json.Marshal(m)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			return jsonError(field, err)
		}
		return nil
	}
	if err := strict("", take(top, httpTopKeys), &only); err != nil {
		return nil, only, err
	}
	for _, sub := range []struct {
		name string
		keys []string
		into any
	}{
		{"breaker", httpBreakerKeys, &only.Breaker},
		{"healthProbe", httpProbeKeys, &only.HealthProbe},
	} {
		raw, ok := top[sub.name]
		if !ok {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return nil, only, fmt.Errorf("fulcrumhttp: %s: %s, must be a JSON object", sub.name, raw)
		}
		for k := range m {
			if instead, bad := grpcOnly[sub.name+"."+k]; bad {
				return nil, only, fmt.Errorf("fulcrumhttp: %s.%s: %s, must be absent (gRPC only; use %s)", sub.name, k, m[k], instead)
			}
		}
		if err := strict(sub.name+".", take(m, sub.keys), sub.into); err != nil {
			return nil, only, err
		}
		top[sub.name], _ = json.Marshal(m)
	}
	shared, _ = json.Marshal(top)
	return shared, only, nil
}

// duration parses the HTTP-only duration field at path.
func duration(path string, s *string, dst *time.Duration) error {
	if s == nil {
		return nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil {
		return fmt.Errorf("fulcrumhttp: %s: %q, must be a duration string like \"5s\"", path, *s)
	}
	*dst = d
	return nil
}

func (c *config) apply(o httpOnly) error {
	if err := duration("idleConnTimeout", o.IdleConnTimeout, &c.IdleConnTimeout); err != nil {
		return err
	}
	if err := duration("breaker.maxRetryAfter", o.Breaker.MaxRetryAfter, &c.MaxRetryAfter); err != nil {
		return err
	}
	if o.H2C != nil {
		c.H2C = *o.H2C
	}
	if o.MaxIdleConnsPerEndpoint != nil {
		c.MaxIdleConnsPerEndpoint = *o.MaxIdleConnsPerEndpoint
	}
	if r := o.Retry; r != nil {
		if r.MaxAttempts != nil {
			c.Retry.MaxAttempts = *r.MaxAttempts
		}
		if r.Statuses != nil {
			c.Retry.Statuses = r.Statuses
		}
		if r.BudgetPercent != nil {
			c.Retry.BudgetPercent = *r.BudgetPercent
		}
		if r.MinRetriesPerSecond != nil {
			c.Retry.MinRetriesPerSecond = *r.MinRetriesPerSecond
		}
	}
	if o.Breaker.FailureStatuses != nil {
		c.FailureStatuses = o.Breaker.FailureStatuses
	}
	if p := o.HealthProbe.Path; p != nil {
		c.ProbePath = *p
	}
	if v := o.HealthProbe.NotFoundIsHealthy; v != nil {
		c.NotFoundIsHealthy = *v
	}
	if v := o.HealthProbe.Scheme; v != nil {
		c.ProbeScheme = *v
	}
	return nil
}

// validate checks the HTTP-only fields (the shared ones were checked by the
// policy's parser).
func (c *config) validate() error {
	var errs []error
	bad := func(field string, v any, constraint string) {
		errs = append(errs, fmt.Errorf("fulcrumhttp: %s: %v, must be %s", field, v, constraint))
	}
	statuses := func(field string, s []int) {
		for i, code := range s {
			if code < 500 || code > 599 {
				bad(fmt.Sprintf("%s[%d]", field, i), code, "a 5xx status in [500, 599] (a 4xx is never the endpoint's fault)")
			}
		}
	}
	durIn := func(field string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			bad(field, v, fmt.Sprintf("in [%v, %v]", lo, hi))
		}
	}
	floatIn := func(field string, v, lo, hi float64) {
		if math.IsNaN(v) || v < lo || v > hi {
			bad(field, v, fmt.Sprintf("in [%g, %g]", lo, hi))
		}
	}
	statuses("breaker.failureStatuses", c.FailureStatuses)
	durIn("breaker.maxRetryAfter", c.MaxRetryAfter, 0, 10*time.Minute)
	if c.ProbePath != "" && !strings.HasPrefix(c.ProbePath, "/") {
		bad("healthProbe.path", fmt.Sprintf("%q", c.ProbePath), `a path starting with "/" (or "" for no probing)`)
	}
	if c.ProbeScheme != "" && c.ProbeScheme != "http" && c.ProbeScheme != "https" {
		bad("healthProbe.scheme", fmt.Sprintf("%q", c.ProbeScheme), `"http", "https" or ""`)
	}
	if n := c.MaxIdleConnsPerEndpoint; n < 1 || n > 10000 {
		bad("maxIdleConnsPerEndpoint", n, "in [1, 10000]")
	}
	durIn("idleConnTimeout", c.IdleConnTimeout, time.Second, time.Hour)
	if n := c.Retry.MaxAttempts; n < 1 || n > 5 {
		bad("retry.maxAttempts", n, "in [1, 5]")
	}
	// issue 18: 408 and 429 may be retried when asked (on another
	// endpoint, so a per-endpoint limit is not hit again); other 4xx never.
	for i, code := range c.Retry.Statuses {
		if code != 408 && code != 429 && (code < 500 || code > 599) {
			bad(fmt.Sprintf("retry.statuses[%d]", i), code, "408, 429 or a 5xx status in [500, 599]")
		}
	}
	floatIn("retry.budgetPercent", c.Retry.BudgetPercent, 0, 100)
	floatIn("retry.minRetriesPerSecond", c.Retry.MinRetriesPerSecond, 0, 10000)
	return errors.Join(errs...)
}

// probing reports whether endpoints are actively probed.
func (c *config) probing() bool { return c.LB.HealthProbe.Enabled && c.ProbePath != "" }

// jsonError words a decoding error of an HTTP-only field; prefix is the
// path of the object holding it ("" or "retry." style).
func jsonError(prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a number"
		switch {
		case te.Type.Kind() == reflect.Bool:
			want = "true or false"
		case te.Type.Kind() == reflect.String:
			want = "a string"
		case te.Type.Kind() == reflect.Slice:
			want = "a list of status codes"
		case te.Type.Kind() == reflect.Struct:
			want = "a JSON object"
		}
		return fmt.Errorf("fulcrumhttp: %s%s: %s, must be %s", prefix, te.Field, te.Value, want)
	}
	if strings.Contains(err.Error(), "not a duration string") {
		return fmt.Errorf("fulcrumhttp: %s%s, must be a duration string like \"5s\"", prefix, strings.TrimPrefix(err.Error(), "json: "))
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("fulcrumhttp: unknown field %s%s; see README for the allowed fields", prefix, strings.Trim(f, `"`))
	}
	return fmt.Errorf("fulcrumhttp: %sconfig: %v", prefix, err)
}
