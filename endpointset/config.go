package endpointset

import "time"

// Config is the engine's part of the policy configuration.
type Config struct {
	PanicThresholdPercent float64
	MaxEjectionPercent    float64
	SlowStart             SlowStartConfig
}

// SlowStartConfig configures the ramp of an endpoint's weight.
type SlowStartConfig struct {
	Window           time.Duration
	Aggression       float64
	MinWeightPercent float64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		PanicThresholdPercent: 50,
		MaxEjectionPercent:    50,
		SlowStart:             SlowStartConfig{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10},
	}
}
