package endpointset

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fulcrum-lb/fulcrum/config"
)

// Config configures the decisions over the whole endpoint set: panic mode,
// the ejection cap and slow start. Its fields sit at the top level of the
// policy's service config (the JSON names are those of the tags). The zero
// value is not valid: start from DefaultConfig.
type Config struct {
	// PanicThresholdPercent: when fewer than this share of all endpoints
	// are usable (connected, healthy, breaker closed), health and breakers
	// are ignored and every connected endpoint is picked from (Envoy's
	// panic mode), but those awaiting their first probe. When fewer than
	// this share are usable without counting those whose breaker is on
	// trial, the breakers on trial admit every request instead of one at a
	// time. 0 disables both. Default 50, bounds [0, 100].
	PanicThresholdPercent float64 `json:"panicThresholdPercent"`
	// MaxEjectionPercent caps the share of endpoints that breakers may
	// eject at once. Above 0, at least one may always be ejected (Envoy:
	// "will eject at least one host regardless of the value"); 0 ejects
	// none, the breakers still trip and report (grpc-go's outlier
	// detection stops when the ejected share is >= max_ejection_percent).
	// The earliest trips stay ejected (Envoy). Endpoints kept in rotation
	// by the cap are picked like any other, so a fast-failing one looks
	// idle and attracts traffic. Default 50, bounds [0, 100].
	MaxEjectionPercent float64 `json:"maxEjectionPercent"`
	// SlowStart ramps the weight of a new endpoint.
	SlowStart SlowStartConfig `json:"slowStart"`
	// LocalZone is the client's zone: while the endpoints in it can take
	// the traffic, requests stay in it (zone.go). Empty means zone-unaware;
	// a transport then falls back to the FULCRUM_LOCAL_ZONE environment
	// variable (LocalZoneEnv, read by policy.EnvZone). Default "",
	// bounds: at most 128 bytes, no spaces or control characters.
	LocalZone string `json:"localZone"`
}

// LocalZoneEnv is the environment variable a transport reads the client's
// zone from when its configuration gives none.
const LocalZoneEnv = "FULCRUM_LOCAL_ZONE"

// SlowStartConfig configures the ramp of a new endpoint's weight (Envoy's
// slow_start_config):
//
//	weight x max(MinWeightPercent/100, (max(elapsed, 1s) / Window) ^ (1 / Aggression))
type SlowStartConfig struct {
	// Window over which the weight ramps to 100 % after warm-up; 0
	// disables slow start. Endpoints of the first resolver update are not
	// slowed. Default 10s, bounds [0, 1h].
	Window config.Duration `json:"window"`
	// Aggression shapes the ramp: 1 is linear, larger values ramp faster
	// at first. Default 1.0, bounds (0, 10].
	Aggression float64 `json:"aggression"`
	// MinWeightPercent is the floor of the ramp. Default 10, bounds
	// [1, 100].
	MinWeightPercent float64 `json:"minWeightPercent"`
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		PanicThresholdPercent: 50,
		MaxEjectionPercent:    50,
		SlowStart: SlowStartConfig{
			Window:           config.Duration(10 * time.Second),
			Aggression:       1,
			MinWeightPercent: 10,
		},
	}
}

// Validate reports every field outside its documented bounds, each as
// "<field>: <value>, must be <constraint>" with the field's JSON path
// ("slowStart.window").
func (c Config) Validate() error {
	return errors.Join(
		config.FloatIn("panicThresholdPercent", c.PanicThresholdPercent, 0, 100),
		config.FloatIn("maxEjectionPercent", c.MaxEjectionPercent, 0, 100),
		config.Prefix("slowStart.", c.SlowStart.Validate()),
		c.ValidateZone(),
	)
}

// ValidateZone reports a LocalZone that no registry would give a zone:
// more than 128 bytes, spaces or control characters.
func (c Config) ValidateZone() error { return validZone("localZone", c.LocalZone) }

// validZone accepts a zone name as registries spell them: up to 128
// bytes, without spaces or control characters.
func validZone(field, z string) error {
	const constraint = "at most 128 bytes without spaces or control characters"
	if len(z) > 128 {
		return config.Invalid(field, fmt.Sprintf("%q", z), constraint)
	}
	for _, r := range z {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return config.Invalid(field, fmt.Sprintf("%q", z), constraint)
		}
	}
	return nil
}

// Validate reports every field outside its documented bounds, named
// relative to the slowStart object ("window").
func (c SlowStartConfig) Validate() error {
	var aggression error
	if math.IsNaN(c.Aggression) || c.Aggression <= 0 || c.Aggression > 10 {
		// 0 would divide by zero in the exponent 1/aggression.
		aggression = config.Invalid("aggression", c.Aggression, "in (0, 10]")
	}
	return errors.Join(
		config.DurationIn("window", c.Window, 0, time.Hour),
		aggression,
		config.FloatIn("minWeightPercent", c.MinWeightPercent, 1, 100),
	)
}
