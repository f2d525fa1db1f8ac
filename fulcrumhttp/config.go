package fulcrumhttp

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	fconfig "github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/picker"
	"github.com/fulcrum-lb/fulcrum/policy"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// component prefixes this package's config errors and warnings.
const component = "fulcrumhttp"

// policyPicker and policySet name the embedded shared
// configurations (two embedded types both called Config could not share
// one struct); their fields sit at the top level of the JSON.
type (
	policyPicker = picker.Config
	policySet    = endpointset.Config
)

// config is the parsed configuration of a Transport, in the layout of
// WithConfig's JSON. The shared fields (selection, panic mode, ejection
// cap, slow start, breaker, probe timing) are those of the gRPC policy,
// defined once by the packages that implement them and read through the
// one parser of package policy; the fields below them are HTTP's own.
type config struct {
	// policyPicker: choiceCount, activeRequestBias, latencyAware,
	// latencyDecay.
	policyPicker
	// policySet: panicThresholdPercent, maxEjectionPercent,
	// slowStart.
	policySet

	Breaker     breakerConfig `json:"breaker"`
	HealthProbe probeConfig   `json:"healthProbe"`

	// H2C sends http:// requests as HTTP/2 with prior knowledge (h2c)
	// instead of HTTP/1.1. Default false. https:// requests negotiate
	// HTTP/2 through ALPN either way; with h2c on they require it.
	H2C bool `json:"h2c"`
	// MaxIdleConnsPerEndpoint is the idle HTTP/1.1 connections kept per
	// endpoint. Default 64, bounds [1, 10000]; net/http's default of 2 per
	// host makes every burst above 2 concurrent requests dial.
	MaxIdleConnsPerEndpoint int `json:"maxIdleConnsPerEndpoint"`
	// IdleConnTimeout closes idle connections after this long. Default
	// 90s, bounds [1s, 1h].
	IdleConnTimeout fconfig.Duration `json:"idleConnTimeout"`
	// HTTP2 allows HTTP/2 over TLS, negotiated by ALPN. Default true;
	// false sends HTTP/1.1 only. Must be true with h2c.
	HTTP2 bool `json:"http2"`

	Retry retryConfig `json:"retry"`

	Hedging hedgingConfig `json:"hedging"`
}

// hedgingConfig is the hedging policy (JSON hedging): the fields of
// hedge.Policy, shared with fulcrum.HedgingPolicy, and the switch.
type hedgingConfig struct {
	// Enabled hedges requests that are safe to repeat (the retry rule:
	// idempotent and a rewindable body). Default false.
	Enabled bool `json:"enabled"`
	// maxAttempts, delay, minDelay, maxExtraLoadPercent,
	// minHedgesPerSecond: see hedge.Policy. A hedge also takes a token of
	// the host's retry budget: retries and hedges together stay within
	// retry.budgetPercent.
	hedge.Policy
}

// breakerConfig is the "breaker" object: the shared breaker and what HTTP
// counts as a failure.
type breakerConfig struct {
	breaker.Config
	// FailureStatuses are the response statuses that count as a breaker
	// failure. Default 502, 503, 504; each must be in [500, 599]: a 4xx is
	// the caller's problem, never the endpoint's.
	FailureStatuses []int `json:"failureStatuses"`
	// MaxRetryAfter caps how long a Retry-After (on a status of
	// RetryAfterStatuses) makes selection prefer other endpoints. Default
	// 30s, bounds [0, 10m]; 0 ignores the header.
	MaxRetryAfter fconfig.Duration `json:"maxRetryAfter"`
	// RetryAfterStatuses are the statuses whose Retry-After header is
	// honoured. Default [503]: a 429 is usually one caller's rate limit,
	// not the endpoint's health. Each must be 429 or in [500, 599].
	RetryAfterStatuses []int `json:"retryAfterStatuses"`
}

// probeConfig is the "healthProbe" object: the shared probe timing and
// HTTP's request.
type probeConfig struct {
	probe.Config
	// Path is the path of the active health probe, GET on every endpoint.
	// Default "": no probing, because HTTP has no standard health
	// endpoint. Must start with "/".
	Path string `json:"path"`
	// NotFoundIsHealthy says what a 404 to the probe means: true (default)
	// takes it for a server without a health endpoint, counted healthy
	// with one logged warning; false counts it as a failed probe.
	NotFoundIsHealthy bool `json:"notFoundIsHealthy"`
	// Scheme is "http" or "https". Default "": https when WithTLSConfig
	// is given, http otherwise.
	Scheme string `json:"scheme"`
}

// retryConfig is the retry policy (JSON retry).
type retryConfig struct {
	// MaxAttempts is the number of attempts of one request, the first
	// included. Default 2, bounds [1, 5]; 1 disables retries.
	MaxAttempts int `json:"maxAttempts"`
	// Statuses are the response statuses retried on another endpoint.
	// Default 502, 503, 504; each in [500, 599].
	Statuses []int `json:"statuses"`
	// BudgetPercent of the requests of the last 10 seconds may be retried,
	// on top of MinRetriesPerSecond. Default 20 (Finagle's and Envoy's),
	// bounds [0, 100].
	BudgetPercent float64 `json:"budgetPercent"`
	// MinRetriesPerSecond is the floor of the budget, so that a client
	// sending few requests can still retry. Default 10 (Finagle's), bounds
	// [0, 10000].
	MinRetriesPerSecond float64 `json:"minRetriesPerSecond"`
	// PerTryTimeout bounds each attempt, from sending until the response
	// headers, and the drain of a retried response. Default 0: off, only
	// the request's context bounds an attempt. Bounds 0 or [1ms, 10m].
	PerTryTimeout fconfig.Duration `json:"perTryTimeout"`
}

// grpcOnly are the gRPC policy's own fields and what HTTP uses instead.
var grpcOnly = map[string]string{
	"breaker.failureCodes":               "breaker.failureStatuses",
	"healthProbe.service":                "healthProbe.path",
	"healthProbe.unimplementedIsHealthy": "healthProbe.notFoundIsHealthy",
}

var defaultStatuses = []int{502, 503, 504}

// defaultConfig returns the configuration used for every field the JSON
// leaves out.
func defaultConfig() *config {
	sh := policy.Default()
	return &config{
		policyPicker: sh.Picker,
		policySet:    sh.EndpointSet,
		Breaker: breakerConfig{
			Config:          sh.Breaker,
			FailureStatuses: slices.Clone(defaultStatuses),
			MaxRetryAfter:   fconfig.Duration(30 * time.Second),
			// Replaced, not merged, by the JSON's list.
			RetryAfterStatuses: []int{503},
		},
		HTTP2:                   true,
		HealthProbe:             probeConfig{Config: sh.HealthProbe, NotFoundIsHealthy: true},
		MaxIdleConnsPerEndpoint: 64,
		IdleConnTimeout:         fconfig.Duration(90 * time.Second),
		Retry: retryConfig{
			MaxAttempts:         2,
			Statuses:            slices.Clone(defaultStatuses),
			BudgetPercent:       20,
			MinRetriesPerSecond: 10,
		},
		Hedging: hedgingConfig{Policy: hedge.Policy{}.WithDefaults()},
	}
}

// Parts points at the fields shared with the gRPC policy.
func (c *config) Parts() policy.Parts {
	return policy.Parts{Picker: &c.policyPicker, EndpointSet: &c.policySet, Breaker: &c.Breaker.Config, HealthProbe: &c.HealthProbe.Config}
}

// shared returns the fields shared with the gRPC policy.
func (c *config) shared() policy.Shared { return c.Parts().Shared() }

// parseConfig parses the JSON of WithConfig through the shared parser.
// Errors read "fulcrumhttp: <field>: <value>, must be <constraint>". As
// for the gRPC policy, a field this version does not know is ignored with
// a warning (once per process), so a config written for a newer release
// does not break an older client; the gRPC policy's own fields are
// rejected with the HTTP field to use instead.
func parseConfig(js string) (*config, error) {
	cfg := defaultConfig()
	// Lists are replaced, not merged: null or absent keeps the default.
	cfg.Breaker.FailureStatuses, cfg.Retry.Statuses, cfg.Breaker.RetryAfterStatuses = nil, nil, nil
	unknown, warnings, err := policy.Parse(component, []byte(js), cfg)
	var errs []error
	for _, f := range unknown {
		if instead, ok := grpcOnly[f]; ok {
			errs = append(errs, fmt.Errorf("%s: %s: must be absent (gRPC only; use %s)", component, f, instead))
			continue
		}
		warnings = append(warnings, policy.UnknownWarning(component, f))
	}
	for _, w := range warnings {
		warnOnce.Warn(w, logger.Warning)
	}
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	if cfg.Breaker.FailureStatuses == nil {
		cfg.Breaker.FailureStatuses = slices.Clone(defaultStatuses)
	}
	if cfg.Retry.Statuses == nil {
		cfg.Retry.Statuses = slices.Clone(defaultStatuses)
	}
	if cfg.Breaker.RetryAfterStatuses == nil {
		cfg.Breaker.RetryAfterStatuses = []int{503}
	}
	return cfg, nil
}

// warnOnce remembers the warnings logged.
var warnOnce = &fconfig.Once{}

// ValidateOwn reports the HTTP-only fields outside their bounds.
func (c *config) ValidateOwn() error {
	var errs []error
	bad := func(field string, v any, constraint string) {
		errs = append(errs, fconfig.Invalid(field, v, constraint))
	}
	statuses := func(field string, s []int) {
		for i, code := range s {
			if code < 500 || code > 599 {
				bad(fmt.Sprintf("%s[%d]", field, i), code, "a 5xx status in [500, 599] (a 4xx is never the endpoint's fault)")
			}
		}
	}
	statuses("breaker.failureStatuses", c.Breaker.FailureStatuses)
	errs = append(errs, fconfig.DurationIn("breaker.maxRetryAfter", c.Breaker.MaxRetryAfter, 0, 10*time.Minute))
	if p := c.HealthProbe.Path; p != "" && !strings.HasPrefix(p, "/") {
		bad("healthProbe.path", fmt.Sprintf("%q", p), `a path starting with "/" (or "" for no probing)`)
	}
	if s := c.HealthProbe.Scheme; s != "" && s != "http" && s != "https" {
		bad("healthProbe.scheme", fmt.Sprintf("%q", s), `"http", "https" or ""`)
	}
	errs = append(errs,
		fconfig.IntIn("maxIdleConnsPerEndpoint", c.MaxIdleConnsPerEndpoint, 1, 10000),
		fconfig.DurationIn("idleConnTimeout", c.IdleConnTimeout, time.Second, time.Hour),
		fconfig.IntIn("retry.maxAttempts", c.Retry.MaxAttempts, 1, 5))
	// Issue 18: 408 and 429 may be retried when asked (on another
	// endpoint, so a per-endpoint limit is not hit again); other 4xx never.
	for i, code := range c.Retry.Statuses {
		if code != 408 && code != 429 && (code < 500 || code > 599) {
			bad(fmt.Sprintf("retry.statuses[%d]", i), code, "408, 429 or a 5xx status in [500, 599]")
		}
	}
	for i, code := range c.Breaker.RetryAfterStatuses {
		if code != 429 && (code < 500 || code > 599) {
			bad(fmt.Sprintf("breaker.retryAfterStatuses[%d]", i), code, "429 or a 5xx status in [500, 599]")
		}
	}
	if d := time.Duration(c.Retry.PerTryTimeout); d != 0 && (d < time.Millisecond || d > 10*time.Minute) {
		bad("retry.perTryTimeout", d, "0 (off) or in [1ms, 10m0s]")
	}
	if !c.HTTP2 && c.H2C {
		bad("http2", false, "true when h2c is true")
	}
	errs = append(errs, fconfig.Prefix("hedging.", c.Hedging.WithDefaults().Validate()))
	errs = append(errs,
		fconfig.FloatIn("retry.budgetPercent", c.Retry.BudgetPercent, 0, 100),
		fconfig.FloatIn("retry.minRetriesPerSecond", c.Retry.MinRetriesPerSecond, 0, 10000))
	return errors.Join(errs...)
}

// probing reports whether endpoints are actively probed.
func (c *config) probing() bool { return c.HealthProbe.Enabled && c.HealthProbe.Path != "" }
