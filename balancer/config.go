package balancer

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/picker"
	"github.com/fulcrum-lb/fulcrum/policy"
)

// PickerConfig and EndpointSetConfig name the embedded configurations of
// LBConfig (two embedded types both called Config could not share one
// struct); their fields sit at the top level of the JSON.
type (
	PickerConfig      = picker.Config
	EndpointSetConfig = endpointset.Config
)

// LBConfig is the configuration of the weighted_least_request policy, as it
// appears under its name in a service config's loadBalancingConfig. Each
// concept's configuration is owned by the package that implements it and
// embedded here; every field is optional and documents its default and
// bounds. Values out of bounds and values of the wrong type are rejected
// (grpc then rejects the service config). Unknown fields are logged once
// and ignored, and a choiceCount above 10 is clamped to 10 (gRFC A48), so a
// config written for a newer release still works.
type LBConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// PickerConfig: choiceCount, activeRequestBias, latencyAware,
	// latencyDecay.
	PickerConfig
	// EndpointSetConfig: panicThresholdPercent, maxEjectionPercent,
	// slowStart.
	EndpointSetConfig

	Breaker     BreakerConfig          `json:"breaker"`
	HealthProbe healthprobe.GRPCConfig `json:"healthProbe"`
}

// BreakerConfig is the "breaker" object: the breaker's own configuration
// (flattened in JSON) and which gRPC status codes count as failures.
type BreakerConfig struct {
	breaker.Config
	// FailureCodes are the status codes that count as failures, as names
	// of the gRPC spec in any letter case ("UNAVAILABLE"). Default
	// UNAVAILABLE, INTERNAL, DATA_LOSS, RESOURCE_EXHAUSTED (see README for
	// why; CANCELLED and DEADLINE_EXCEEDED are excluded because the caller
	// causes them, UNKNOWN because grpc-go gives it to every plain Go error
	// a handler returns, i.e. ordinary application errors). OK may not be
	// listed; an empty list counts no status as a failure.
	FailureCodes []string `json:"failureCodes"`
}

// FailureMask returns FailureCodes as a bitmask (1 << code), computed on
// every call so that a config built in Go needs no hidden derived state.
// Names that are not non-OK status codes are left out (Validate reports
// them).
func (c BreakerConfig) FailureMask() uint32 {
	var m uint32
	for _, n := range c.FailureCodes {
		if code, ok := codeByName[strings.ToUpper(n)]; ok && code != codes.OK {
			m |= 1 << uint32(code)
		}
	}
	return m
}

// Validate reports every field outside its documented bounds, named
// relative to the breaker object.
func (c BreakerConfig) Validate() error {
	return errors.Join(c.Config.Validate(), c.validateCodes())
}

// validateCodes reports the names in FailureCodes that are not non-OK
// status codes.
func (c BreakerConfig) validateCodes() error {
	var errs []error
	for i, name := range c.FailureCodes {
		if code, ok := codeByName[strings.ToUpper(name)]; !ok || code == codes.OK {
			errs = append(errs, config.Invalid(fmt.Sprintf("failureCodes[%d]", i), fmt.Sprintf("%q", name),
				`a non-OK gRPC status code name such as "UNAVAILABLE"`))
		}
	}
	return errors.Join(errs...)
}

// defaultFailureCodes: see BreakerConfig.FailureCodes and README.
var defaultFailureCodes = []string{"UNAVAILABLE", "INTERNAL", "DATA_LOSS", "RESOURCE_EXHAUSTED"}

// DefaultConfig returns the configuration used for every field the service
// config leaves out. It is complete: handed to the policy as it is, it
// yields breakers that trip on the default failure codes.
func DefaultConfig() *LBConfig {
	return &LBConfig{
		PickerConfig:      picker.DefaultConfig(),
		EndpointSetConfig: endpointset.DefaultConfig(),
		Breaker: BreakerConfig{
			Config:       breaker.DefaultConfig(),
			FailureCodes: slices.Clone(defaultFailureCodes),
		},
		HealthProbe: healthprobe.DefaultGRPCConfig(),
	}
}

// Parts points at the fields shared with fulcrumhttp (package policy).
func (c *LBConfig) Parts() policy.Parts {
	return policy.Parts{Picker: &c.PickerConfig, EndpointSet: &c.EndpointSetConfig, Breaker: &c.Breaker.Config, HealthProbe: &c.HealthProbe.Config}
}

// ValidateOwn reports the gRPC-only fields outside their bounds.
func (c *LBConfig) ValidateOwn() error {
	return config.Prefix("breaker.", c.Breaker.validateCodes())
}

// Validate reports every field of c outside its documented bounds, as
// "weighted_least_request: <field path>: <value>, must be <constraint>",
// one line per field. A choiceCount above 10 is an error here; the service
// config path clamps it first.
func (c *LBConfig) Validate() error {
	return config.Prefix(Name+": ", errors.Join(c.Parts().Shared().Validate(), c.ValidateOwn()))
}

// parseConfig is ParseConfig: it logs parse's warnings, each distinct one
// once per process.
func parseConfig(js json.RawMessage) (*LBConfig, error) {
	cfg, warnings, err := parse(js)
	for _, w := range warnings {
		warnOnce.Warn(w, warnf)
	}
	return cfg, err
}

// warnOnce remembers the warnings logged; tests replace it.
var warnOnce = &config.Once{}

// parse fills defaults, reads js and validates through the shared parser.
// It returns the warnings to log: unknown fields (at any depth, by dotted
// path) and clamped values.
func parse(js json.RawMessage) (*LBConfig, []string, error) {
	cfg := DefaultConfig()
	cfg.Breaker.FailureCodes = nil // the defaults apply unless listed (null = absent)
	unknown, clamped, err := policy.Parse(Name, js, cfg)
	var warnings []string
	for _, f := range unknown {
		// grpc-go's built-in policies ignore unknown fields, so a service
		// config written for a newer release keeps working (issue 13).
		warnings = append(warnings, policy.UnknownWarning(Name, f))
	}
	warnings = append(warnings, clamped...)
	if err != nil {
		return nil, warnings, err
	}
	if cfg.Breaker.FailureCodes == nil {
		cfg.Breaker.FailureCodes = slices.Clone(defaultFailureCodes)
	}
	return cfg, warnings, nil
}

// warnf logs a warning; tests replace it.
var warnf = logger.Warning

var codeByName = func() map[string]codes.Code {
	m := make(map[string]codes.Code)
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		// codes.Code.String() gives "Unavailable"; the service config and
		// grpc's retry policy use "UNAVAILABLE".
		m[upperSnake(c.String())] = c
	}
	m["CANCELLED"] = codes.Canceled // the spelling of the gRPC spec
	return m
}()

// upperSnake turns "DeadlineExceeded" into "DEADLINE_EXCEEDED".
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// failureMask is BreakerConfig.FailureMask for a list of names.
func failureMask(names []string) uint32 { return BreakerConfig{FailureCodes: names}.FailureMask() }
