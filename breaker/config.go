package breaker

import (
	"fmt"
	"math"
	"time"
)

// Config sets when a Breaker trips and how it recovers. The zero Config is
// not valid; start from DefaultConfig. The json-style names in the error
// texts of Validate are the names of the fields in the service config.
type Config struct {
	// ConsecutiveFailures trips the breaker after this many failures in a
	// row while it is closed. Default 5; 0 disables this trigger; must be
	// >= 0.
	ConsecutiveFailures int
	// FailureRatio trips the breaker when failures/total over Window reaches
	// it, once at least MinRequests outcomes are in the window. Default 0.5;
	// 0 disables this trigger; must be in [0, 1].
	FailureRatio float64
	// MinRequests is the volume the window must hold before FailureRatio
	// applies, so that 1 failure out of 1 RPC does not eject an endpoint.
	// Default 20; must be >= 0.
	MinRequests int
	// Window is the sliding window of FailureRatio, kept as 10 buckets of
	// Window/10 each: an outcome counts for between 0.9×Window and Window.
	// Default 10s; must be >= 10ms (1ms buckets).
	Window time.Duration
	// OpenDuration is how long the breaker stays open after its first trip.
	// Every re-trip from half-open doubles it, up to MaxOpenDuration.
	// Default 5s; must be > 0.
	OpenDuration time.Duration
	// MaxOpenDuration caps the doubling of OpenDuration. It is also how long
	// the breaker must stay closed for the doubling to start over from
	// OpenDuration. Default 2m; must be >= OpenDuration.
	MaxOpenDuration time.Duration
	// HalfOpenRequests is the number of trial RPCs that must succeed in a
	// row, once the open period has elapsed, to close the breaker. Trials
	// run one at a time: the next is admitted only after the previous one
	// succeeded (or was released), so a still-broken endpoint costs one
	// failed RPC per open period; any failure reopens the breaker. Default
	// 3; must be >= 1.
	HalfOpenRequests int
	// TrialTimeout bounds a half-open trial: a trial RPC still in flight
	// after TrialTimeout no longer holds the next trial back (it is
	// superseded and its outcome ignored). 0 disables the bound. Default
	// 10s.
	TrialTimeout time.Duration
}

// DefaultConfig returns the documented defaults of every field.
func DefaultConfig() Config {
	return Config{
		ConsecutiveFailures: 5,
		FailureRatio:        0.5,
		MinRequests:         20,
		Window:              10 * time.Second,
		OpenDuration:        5 * time.Second,
		MaxOpenDuration:     2 * time.Minute,
		HalfOpenRequests:    3,
		TrialTimeout:        10 * time.Second,
	}
}

// minWindow keeps buckets at least 1ms wide; see bucketSlotBits.
const minWindow = 10 * time.Millisecond

// Validate reports the first field of c that is out of bounds, as
// "breaker: <field>: <value>, must be <constraint>".
func (c Config) Validate() error {
	switch {
	case c.ConsecutiveFailures < 0:
		return fmt.Errorf("breaker: consecutiveFailures: %d, must be >= 0", c.ConsecutiveFailures)
	case math.IsNaN(c.FailureRatio) || c.FailureRatio < 0 || c.FailureRatio > 1:
		return fmt.Errorf("breaker: failureRatio: %v, must be in [0, 1]", c.FailureRatio)
	case c.MinRequests < 0:
		return fmt.Errorf("breaker: minRequests: %d, must be >= 0", c.MinRequests)
	case c.Window < minWindow:
		return fmt.Errorf("breaker: window: %v, must be >= %v", c.Window, minWindow)
	case c.OpenDuration <= 0:
		return fmt.Errorf("breaker: openDuration: %v, must be > 0", c.OpenDuration)
	case c.MaxOpenDuration < c.OpenDuration:
		return fmt.Errorf("breaker: maxOpenDuration: %v, must be >= openDuration (%v)", c.MaxOpenDuration, c.OpenDuration)
	case c.HalfOpenRequests < 1 || c.HalfOpenRequests > math.MaxInt32:
		return fmt.Errorf("breaker: halfOpenRequests: %d, must be in [1, %d]", c.HalfOpenRequests, math.MaxInt32)
	}
	return nil
}

// openDuration returns how long the trips-th consecutive trip keeps the
// breaker open: OpenDuration×2^(trips-1), capped at MaxOpenDuration.
func (c Config) openDuration(trips int) time.Duration {
	d := c.OpenDuration
	for i := 1; i < trips && d < c.MaxOpenDuration; i++ {
		if d > c.MaxOpenDuration/2 {
			return c.MaxOpenDuration
		}
		d *= 2
	}
	return min(d, c.MaxOpenDuration)
}
