package breaker

import (
	"math"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// TestConfig_Validate pins every bound: the edge accepted, just outside
// rejected, with the error text of the service config's field.
func TestConfig_Validate(t *testing.T) {
	ms := func(n int) config.Duration { return config.Duration(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"consecutiveFailures 0 disables", func(c *Config) { c.ConsecutiveFailures = 0 }, ""},
		{"consecutiveFailures 1000", func(c *Config) { c.ConsecutiveFailures = 1000 }, ""},
		{"consecutiveFailures negative", func(c *Config) { c.ConsecutiveFailures = -1 }, "consecutiveFailures: -1, must be in [0, 1000]"},
		{"consecutiveFailures 1001", func(c *Config) { c.ConsecutiveFailures = 1001 }, "consecutiveFailures: 1001, must be in [0, 1000]"},
		{"failureRatio 0 disables", func(c *Config) { c.FailureRatio = 0 }, ""},
		{"failureRatio 1", func(c *Config) { c.FailureRatio = 1 }, ""},
		{"failureRatio above 1", func(c *Config) { c.FailureRatio = 1.5 }, "failureRatio: 1.5, must be in [0, 1]"},
		{"failureRatio negative", func(c *Config) { c.FailureRatio = -0.1 }, "failureRatio: -0.1, must be in [0, 1]"},
		{"failureRatio NaN", func(c *Config) { c.FailureRatio = math.NaN() }, "failureRatio: NaN, must be in [0, 1]"},
		{"no trigger while enabled", func(c *Config) { c.ConsecutiveFailures, c.FailureRatio = 0, 0 },
			"consecutiveFailures: 0, must be > 0 when failureRatio is 0 and the breaker is enabled (set enabled: false instead)"},
		{"no trigger while disabled", func(c *Config) { c.Enabled, c.ConsecutiveFailures, c.FailureRatio = false, 0, 0 }, ""},
		{"minRequests 1", func(c *Config) { c.MinRequests = 1 }, ""},
		{"minRequests 1000000", func(c *Config) { c.MinRequests = 1000000 }, ""},
		{"minRequests 0", func(c *Config) { c.MinRequests = 0 }, "minRequests: 0, must be in [1, 1000000]"},
		{"minRequests 1000001", func(c *Config) { c.MinRequests = 1000001 }, "minRequests: 1000001, must be in [1, 1000000]"},
		{"window 1s", func(c *Config) { c.Window = ms(1000) }, ""},
		{"window 10m", func(c *Config) { c.Window = ms(600000) }, ""},
		{"window 999ms", func(c *Config) { c.Window = ms(999) }, "window: 999ms, must be in [1s, 10m0s]"},
		{"window 10m1ms", func(c *Config) { c.Window = ms(600001) }, "window: 10m0.001s, must be in [1s, 10m0s]"},
		{"openDuration 10ms", func(c *Config) { c.OpenDuration = ms(10) }, ""},
		{"openDuration 9ms", func(c *Config) { c.OpenDuration = ms(9) }, "openDuration: 9ms, must be in [10ms, 1h0m0s]"},
		{"openDuration 1h", func(c *Config) { c.OpenDuration, c.MaxOpenDuration = ms(3600000), ms(3600000) }, ""},
		{"openDuration 1h1ms", func(c *Config) { c.OpenDuration, c.MaxOpenDuration = ms(3600001), ms(3600001) }, "openDuration: 1h0m0.001s, must be in [10ms, 1h0m0s]"},
		{"maxOpenDuration equal", func(c *Config) { c.MaxOpenDuration = c.OpenDuration }, ""},
		{"maxOpenDuration below openDuration", func(c *Config) { c.MaxOpenDuration = ms(4999) }, "maxOpenDuration: 4.999s, must be in [5s, 24h0m0s]"},
		{"maxOpenDuration 24h", func(c *Config) { c.MaxOpenDuration = ms(24 * 3600000) }, ""},
		{"maxOpenDuration above 24h", func(c *Config) { c.MaxOpenDuration = ms(24*3600000 + 1) }, "maxOpenDuration: 24h0m0.001s, must be in [5s, 24h0m0s]"},
		{"halfOpenRequests 1", func(c *Config) { c.HalfOpenRequests = 1 }, ""},
		{"halfOpenRequests 100", func(c *Config) { c.HalfOpenRequests = 100 }, ""},
		{"halfOpenRequests 0", func(c *Config) { c.HalfOpenRequests = 0 }, "halfOpenRequests: 0, must be in [1, 100]"},
		{"halfOpenRequests 101", func(c *Config) { c.HalfOpenRequests = 101 }, "halfOpenRequests: 101, must be in [1, 100]"},
		{"trialTimeout 10ms", func(c *Config) { c.TrialTimeout = ms(10) }, ""},
		{"trialTimeout 1h", func(c *Config) { c.TrialTimeout = ms(3600000) }, ""},
		{"trialTimeout 9ms", func(c *Config) { c.TrialTimeout = ms(9) }, "trialTimeout: 9ms, must be in [10ms, 1h0m0s]"},
		{"trialTimeout 1h1ms", func(c *Config) { c.TrialTimeout = ms(3600001) }, "trialTimeout: 1h0m0.001s, must be in [10ms, 1h0m0s]"},
		{"every bad field", func(c *Config) { *c = Config{Enabled: true} },
			"minRequests: 0, must be in [1, 1000000]\n" +
				"window: 0s, must be in [1s, 10m0s]\n" +
				"openDuration: 0s, must be in [10ms, 1h0m0s]\n" +
				"halfOpenRequests: 0, must be in [1, 100]\n" +
				"trialTimeout: 0s, must be in [10ms, 1h0m0s]\n" +
				"consecutiveFailures: 0, must be > 0 when failureRatio is 0 and the breaker is enabled (set enabled: false instead)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestDefaultConfig pins the documented defaults (README's table repeats
// them for the service config).
func TestDefaultConfig(t *testing.T) {
	want := Config{
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
	if got := DefaultConfig(); got != want {
		t.Fatalf("DefaultConfig() = %+v, want %+v", got, want)
	}
}

func TestConfig_OpenDuration(t *testing.T) {
	cfg := DefaultConfig() // 5s, capped at 2m
	for trips, want := range map[int]time.Duration{
		1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second,
		5: 80 * time.Second, 6: 2 * time.Minute, 62: 2 * time.Minute,
	} {
		if got := cfg.openDuration(trips); got != want {
			t.Errorf("openDuration(%d) = %v, want %v", trips, got, want)
		}
	}
	// A cap near the int64 limit must not overflow.
	cfg.MaxOpenDuration = math.MaxInt64 // beyond Validate's bounds: openDuration must still not overflow
	if got := cfg.openDuration(62); got <= 0 || got > math.MaxInt64 {
		t.Errorf("openDuration(62) with a huge cap = %v, want positive", got)
	}
}
