package breaker

import (
	"errors"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// Config sets when a Breaker trips and how it recovers. It is the "breaker"
// object of the service config (the policy adds failureCodes); the JSON
// names are those of the tags. The zero Config is not valid; start from
// DefaultConfig. Every field's bounds are enforced by Validate, and New
// rejects a Config that fails it.
type Config struct {
	// Enabled turns the breaker on. The transport adapters create no
	// breakers when it is false (Breaker itself ignores it). Default true.
	Enabled bool `json:"enabled"`
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row while it is closed; 0 disables this trigger. Default 5, bounds
	// [0, 1000].
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// FailureRatio trips the breaker when failures/total over Window reaches
	// it, once at least MinRequests outcomes are in the window; 0 disables
	// this trigger. Default 0.5, bounds [0, 1]. With Enabled, at least one of
	// ConsecutiveFailures and FailureRatio must be non-zero.
	FailureRatio float64 `json:"failureRatio"`
	// MinRequests is the volume the window must hold before FailureRatio
	// applies, so that 1 failure out of 1 RPC does not eject an endpoint.
	// Default 20, bounds [1, 1000000].
	MinRequests int `json:"minRequests"`
	// Window is the sliding window of FailureRatio, kept as 10 buckets of
	// Window/10 each: an outcome counts for between 0.9×Window and Window.
	// Default 10s, bounds [1s, 10m].
	Window config.Duration `json:"window"`
	// OpenDuration is how long the breaker stays open after its first trip.
	// Every re-trip from half-open doubles it, up to MaxOpenDuration.
	// Default 5s, bounds [10ms, 1h].
	OpenDuration config.Duration `json:"openDuration"`
	// MaxOpenDuration caps the doubling of OpenDuration. It is also how long
	// the breaker must stay closed for the doubling to start over from
	// OpenDuration. Default 2m, bounds [OpenDuration, 24h].
	MaxOpenDuration config.Duration `json:"maxOpenDuration"`
	// HalfOpenRequests is the number of trial RPCs that must succeed in a
	// row, once the open period has elapsed, to close the breaker. Trials
	// run one at a time: the next is admitted only after the previous one
	// succeeded (or was released), so a still-broken endpoint costs one
	// failed RPC per open period (unless SetAdmitAll is on); any failure
	// reopens the breaker. Default 3, bounds [1, 100].
	HalfOpenRequests int `json:"halfOpenRequests"`
	// TrialTimeout bounds how long one half-open trial can hold the next
	// back: a trial RPC that has not finished after TrialTimeout no longer
	// holds the next trial back, so a hung trial (a long stream, an RPC
	// without a deadline) cannot keep the endpoint ejected for ever.
	// Default 10s, bounds [10ms, 1h].
	TrialTimeout config.Duration `json:"trialTimeout"`
}

// DefaultConfig returns the documented defaults of every field.
func DefaultConfig() Config {
	return Config{
		Enabled:             true,
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              config.Duration(10 * time.Second),
		OpenDuration:        config.Duration(5 * time.Second),
		MaxOpenDuration:     config.Duration(2 * time.Minute),
		HalfOpenRequests:    3,
		TrialTimeout:        config.Duration(10 * time.Second),
	}
}

// Validate reports every field of c that is out of bounds, each as
// "<field>: <value>, must be <constraint>" with the field's JSON name.
func (c Config) Validate() error {
	var noTrigger error
	if c.Enabled && c.ConsecutiveFailures == 0 && c.FailureRatio == 0 {
		noTrigger = config.Invalid("consecutiveFailures", 0,
			"> 0 when failureRatio is 0 and the breaker is enabled (set enabled: false instead)")
	}
	return errors.Join(
		config.IntIn("consecutiveFailures", c.ConsecutiveFailures, 0, 1000),
		config.FloatIn("failureRatio", c.FailureRatio, 0, 1),
		config.IntIn("minRequests", c.MinRequests, 1, 1000000),
		config.DurationIn("window", c.Window, time.Second, 10*time.Minute),
		config.DurationIn("openDuration", c.OpenDuration, 10*time.Millisecond, time.Hour),
		config.DurationIn("maxOpenDuration", c.MaxOpenDuration, time.Duration(c.OpenDuration), 24*time.Hour),
		config.IntIn("halfOpenRequests", c.HalfOpenRequests, 1, 100),
		config.DurationIn("trialTimeout", c.TrialTimeout, 10*time.Millisecond, time.Hour),
		noTrigger,
	)
}

// openDuration returns how long the trips-th consecutive trip keeps the
// breaker open: OpenDuration×2^(trips-1), capped at MaxOpenDuration.
func (c Config) openDuration(trips int) time.Duration {
	d, maxD := time.Duration(c.OpenDuration), time.Duration(c.MaxOpenDuration)
	for i := 1; i < trips && d < maxD; i++ {
		if d > maxD/2 {
			return maxD
		}
		d *= 2
	}
	return min(d, maxD)
}
