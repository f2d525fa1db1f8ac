// Package probe is Fulcrum's transport-neutral active health probing: the
// configuration both transports share, the one probe loop (Loop, which runs
// a pluggable single-shot Prober), the typed results that steer it
// (Outcome, Result, Note), the verdict with hysteresis, and the probe
// budget of a channel or host (ScaledInterval). The gRPC Check prober is
// package healthprobe's; the HTTP GET prober is fulcrumhttp's. It imports
// nothing of grpc-go or net/http.
package probe

import (
	"errors"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// Config is the part of active health probing common to every transport:
// when to probe and how many results flip the verdict. The gRPC prober
// uses GRPCConfig, which adds what only a grpc.health.v1 Check has; an HTTP
// prober adds its own request fields the same way. The JSON names are
// those of the tags. The zero value is not valid: start from DefaultConfig.
type Config struct {
	// Enabled turns probing on. The adapters do not start probers when it
	// is false (the prober itself ignores it). Default true.
	Enabled bool `json:"enabled"`
	// Interval is the wait between the end of one probe and the start of the
	// next, before jitter. Probes never overlap. Default 500ms, bounds
	// [10ms, 1h]. The scenario benchmark chose the default: with 1s, a hung
	// backend took 3.3s to eject and cost 0.6 % of RPCs at 600 RPC/s.
	Interval config.Duration `json:"interval"`
	// Timeout bounds one probe: a probe without an answer by then fails.
	// Default 250ms, bounds [1ms, Interval], so that a hung server cannot
	// stretch the probe period to more than twice the interval.
	Timeout config.Duration `json:"timeout"`
	// Jitter spreads the waits: each wait is drawn uniformly from
	// Interval*(1-Jitter) to Interval*(1+Jitter), so that clients started
	// together do not probe a server in lockstep. Default 0.2, bounds
	// [0, 0.5] (above 0.5 waits could approach zero and probes run back to
	// back).
	Jitter float64 `json:"jitter"`
	// UnhealthyThreshold is the number of consecutive failed probes that mark
	// a healthy endpoint unhealthy (an explicit NOT_SERVING, or whatever the
	// transport's prober treats as such, counts at once). Default 2, bounds
	// [1, 100].
	UnhealthyThreshold int `json:"unhealthyThreshold"`
	// HealthyThreshold is the number of consecutive successful probes that
	// mark an unhealthy endpoint healthy again. Default 2, bounds [1, 100].
	HealthyThreshold int `json:"healthyThreshold"`
	// Warmup holds a new or reconnected endpoint back from application
	// traffic until its first successful probe (the adapters apply it; the
	// first probe fires as soon as the connection is up). Default true.
	Warmup bool `json:"warmup"`
	// MaxProbesPerSecond caps the probes one channel (gRPC) or host (HTTP) sends, all endpoints
	// together: with n endpoints each connection is probed every
	// max(interval, n / maxProbesPerSecond), so a channel of up to 100
	// endpoints keeps the default interval and a server behind many large
	// channels is not flooded (README, "Probe load"). 0 disables the cap.
	// Default 200, bounds [0, 1000000].
	MaxProbesPerSecond float64 `json:"maxProbesPerSecond"`
}

// DefaultConfig returns the defaults documented on each Config field.
func DefaultConfig() Config {
	return Config{
		Enabled:            true,
		Interval:           config.Duration(500 * time.Millisecond),
		Timeout:            config.Duration(250 * time.Millisecond),
		Jitter:             0.2,
		UnhealthyThreshold: 2,
		HealthyThreshold:   2,
		Warmup:             true,
		MaxProbesPerSecond: 200,
	}
}

// Validate reports every field outside its documented bounds, each as
// "<field>: <value>, must be <constraint>" with the field's JSON name.
func (c Config) Validate() error {
	return errors.Join(
		// maxInterval keeps Interval*(1+Jitter) far from time.Duration
		// overflow; a probe less often than hourly detects nothing in time
		// anyway.
		config.DurationIn("interval", c.Interval, 10*time.Millisecond, time.Hour),
		config.DurationIn("timeout", c.Timeout, time.Millisecond, time.Duration(c.Interval)),
		config.FloatIn("jitter", c.Jitter, 0, 0.5),
		config.IntIn("unhealthyThreshold", c.UnhealthyThreshold, 1, 100),
		config.IntIn("healthyThreshold", c.HealthyThreshold, 1, 100),
		config.FloatIn("maxProbesPerSecond", c.MaxProbesPerSecond, 0, 1e6),
	)
}
