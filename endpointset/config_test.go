package endpointset

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fulcrum-lb/fulcrum/config"
)

// TestConfig_Defaults pins the documented defaults with literals.
func TestConfig_Defaults(t *testing.T) {
	want := Config{
		PanicThresholdPercent: 50,
		MaxEjectionPercent:    50,
		SlowStart:             SlowStartConfig{Window: config.Duration(10 * time.Second), Aggression: 1, MinWeightPercent: 10},
	}
	if diff := cmp.Diff(want, DefaultConfig()); diff != "" {
		t.Fatalf("DefaultConfig() diff (-want +got):\n%s", diff)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	b, err := json.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"panicThresholdPercent":50,"maxEjectionPercent":50,"slowStart":{"window":"10s","aggression":1,"minWeightPercent":10},"localZone":""}`
	if string(b) != wantJSON {
		t.Errorf("JSON of the defaults = %s, want %s", b, wantJSON)
	}
}

// TestConfig_Validate pins every bound: the edge accepted, just outside
// rejected, named by JSON path.
func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"panicThresholdPercent 0", func(c *Config) { c.PanicThresholdPercent = 0 }, ""},
		{"panicThresholdPercent 100", func(c *Config) { c.PanicThresholdPercent = 100 }, ""},
		{"panicThresholdPercent -0.1", func(c *Config) { c.PanicThresholdPercent = -0.1 }, "panicThresholdPercent: -0.1, must be in [0, 100]"},
		{"panicThresholdPercent 100.1", func(c *Config) { c.PanicThresholdPercent = 100.1 }, "panicThresholdPercent: 100.1, must be in [0, 100]"},
		{"maxEjectionPercent 0", func(c *Config) { c.MaxEjectionPercent = 0 }, ""},
		{"maxEjectionPercent 100", func(c *Config) { c.MaxEjectionPercent = 100 }, ""},
		{"maxEjectionPercent -1", func(c *Config) { c.MaxEjectionPercent = -1 }, "maxEjectionPercent: -1, must be in [0, 100]"},
		{"maxEjectionPercent NaN", func(c *Config) { c.MaxEjectionPercent = math.NaN() }, "maxEjectionPercent: NaN, must be in [0, 100]"},
		{"slowStart.window 0", func(c *Config) { c.SlowStart.Window = 0 }, ""},
		{"slowStart.window 1h", func(c *Config) { c.SlowStart.Window = config.Duration(time.Hour) }, ""},
		{"slowStart.window -1ns", func(c *Config) { c.SlowStart.Window = -1 }, "slowStart.window: -1ns, must be in [0s, 1h0m0s]"},
		{"slowStart.window 1h1ms", func(c *Config) { c.SlowStart.Window = config.Duration(time.Hour + time.Millisecond) }, "slowStart.window: 1h0m0.001s, must be in [0s, 1h0m0s]"},
		{"slowStart.aggression 0.001", func(c *Config) { c.SlowStart.Aggression = 0.001 }, ""},
		{"slowStart.aggression 10", func(c *Config) { c.SlowStart.Aggression = 10 }, ""},
		{"slowStart.aggression 0", func(c *Config) { c.SlowStart.Aggression = 0 }, "slowStart.aggression: 0, must be in (0, 10]"},
		{"slowStart.aggression 10.01", func(c *Config) { c.SlowStart.Aggression = 10.01 }, "slowStart.aggression: 10.01, must be in (0, 10]"},
		{"slowStart.aggression NaN", func(c *Config) { c.SlowStart.Aggression = math.NaN() }, "slowStart.aggression: NaN, must be in (0, 10]"},
		{"slowStart.minWeightPercent 1", func(c *Config) { c.SlowStart.MinWeightPercent = 1 }, ""},
		{"slowStart.minWeightPercent 100", func(c *Config) { c.SlowStart.MinWeightPercent = 100 }, ""},
		{"slowStart.minWeightPercent 0.9", func(c *Config) { c.SlowStart.MinWeightPercent = 0.9 }, "slowStart.minWeightPercent: 0.9, must be in [1, 100]"},
		{"slowStart.minWeightPercent 101", func(c *Config) { c.SlowStart.MinWeightPercent = 101 }, "slowStart.minWeightPercent: 101, must be in [1, 100]"},
		{"every bad field", func(c *Config) {
			*c = Config{PanicThresholdPercent: -1, MaxEjectionPercent: 101, SlowStart: SlowStartConfig{Window: -1}}
		},
			"panicThresholdPercent: -1, must be in [0, 100]\nmaxEjectionPercent: 101, must be in [0, 100]\n" +
				"slowStart.window: -1ns, must be in [0s, 1h0m0s]\nslowStart.aggression: 0, must be in (0, 10]\nslowStart.minWeightPercent: 0, must be in [1, 100]"},
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
