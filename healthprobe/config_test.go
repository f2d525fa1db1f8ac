package healthprobe

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/config"
)

// TestConfig_Defaults pins the documented defaults with literals.
func TestConfig_Defaults(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	require.NoError(t, DefaultGRPCConfig().Validate())
	want := Config{
		Enabled:            true,
		Interval:           config.Duration(500 * time.Millisecond),
		Timeout:            config.Duration(250 * time.Millisecond),
		Jitter:             0.2,
		UnhealthyThreshold: 2,
		HealthyThreshold:   2,
		Warmup:             true,
		MaxProbesPerSecond: 200,
	}
	assert.Equal(t, want, DefaultConfig())
	assert.Equal(t, GRPCConfig{Config: want, Service: "", UnimplementedIsHealthy: true}, DefaultGRPCConfig())
}

// TestConfig_Validate pins every bound: the edge accepted, just outside
// rejected, with the field's JSON name in the error.
func TestConfig_Validate(t *testing.T) {
	ms := func(n float64) config.Duration { return config.Duration(n * float64(time.Millisecond)) }
	with := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // exact text; "" means valid
	}{
		{"defaults", DefaultConfig(), ""},
		{"disabled keeps bounds", with(func(c *Config) { c.Enabled, c.Interval = false, 0 }), "interval: 0s, must be in [10ms, 1h0m0s]\ntimeout: 250ms, must be in [1ms, 0s]"},
		{"interval at min", with(func(c *Config) { c.Interval, c.Timeout = ms(10), ms(1) }), ""},
		{"interval below min", with(func(c *Config) { c.Interval, c.Timeout = ms(9.999), ms(1) }), "interval: 9.999ms, must be in [10ms, 1h0m0s]"},
		{"interval at max", with(func(c *Config) { c.Interval = ms(3600000) }), ""},
		{"interval above max", with(func(c *Config) { c.Interval = ms(3600001) }), "interval: 1h0m0.001s, must be in [10ms, 1h0m0s]"},
		{"interval negative", with(func(c *Config) { c.Interval, c.Timeout = ms(-1000), ms(1) }), "interval: -1s, must be in [10ms, 1h0m0s]\ntimeout: 1ms, must be in [1ms, -1s]"},
		{"timeout at min", with(func(c *Config) { c.Timeout = ms(1) }), ""},
		{"timeout below min", with(func(c *Config) { c.Timeout = ms(0.999) }), "timeout: 999µs, must be in [1ms, 500ms]"},
		{"timeout equals interval", with(func(c *Config) { c.Timeout = c.Interval }), ""},
		{"timeout above interval", with(func(c *Config) { c.Timeout = c.Interval + 1 }), "timeout: 500.000001ms, must be in [1ms, 500ms]"},
		{"jitter zero", with(func(c *Config) { c.Jitter = 0 }), ""},
		{"jitter max", with(func(c *Config) { c.Jitter = 0.5 }), ""},
		{"jitter above max", with(func(c *Config) { c.Jitter = 0.51 }), "jitter: 0.51, must be in [0, 0.5]"},
		{"jitter negative", with(func(c *Config) { c.Jitter = -0.1 }), "jitter: -0.1, must be in [0, 0.5]"},
		{"jitter NaN", with(func(c *Config) { c.Jitter = math.NaN() }), "jitter: NaN, must be in [0, 0.5]"},
		{"unhealthyThreshold 1", with(func(c *Config) { c.UnhealthyThreshold = 1 }), ""},
		{"unhealthyThreshold 100", with(func(c *Config) { c.UnhealthyThreshold = 100 }), ""},
		{"unhealthyThreshold 0", with(func(c *Config) { c.UnhealthyThreshold = 0 }), "unhealthyThreshold: 0, must be in [1, 100]"},
		{"unhealthyThreshold 101", with(func(c *Config) { c.UnhealthyThreshold = 101 }), "unhealthyThreshold: 101, must be in [1, 100]"},
		{"healthyThreshold 1", with(func(c *Config) { c.HealthyThreshold = 1 }), ""},
		{"healthyThreshold 100", with(func(c *Config) { c.HealthyThreshold = 100 }), ""},
		{"healthyThreshold -2", with(func(c *Config) { c.HealthyThreshold = -2 }), "healthyThreshold: -2, must be in [1, 100]"},
		{"healthyThreshold 101", with(func(c *Config) { c.HealthyThreshold = 101 }), "healthyThreshold: 101, must be in [1, 100]"},
		{"warmup false", with(func(c *Config) { c.Warmup = false }), ""},
		{"zero value reports every bad field", Config{},
			"interval: 0s, must be in [10ms, 1h0m0s]\ntimeout: 0s, must be in [1ms, 0s]\nunhealthyThreshold: 0, must be in [1, 100]\nhealthyThreshold: 0, must be in [1, 100]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.wantErr, err.Error())
			// GRPCConfig adds no bound of its own.
			g := GRPCConfig{Config: tt.cfg, Service: "any name"}
			require.Error(t, g.Validate())
			assert.Equal(t, tt.wantErr, g.Validate().Error())
		})
	}
}

// TestGRPCConfig_JSON: the common fields are flattened next to the gRPC
// ones, durations are strings, and absent fields keep their value.
func TestGRPCConfig_JSON(t *testing.T) {
	got := DefaultGRPCConfig()
	in := `{"enabled":false,"service":"pkg.Svc","interval":"250ms","timeout":"0.1s","jitter":0.5,
	        "unhealthyThreshold":4,"healthyThreshold":1,"warmup":false,"unimplementedIsHealthy":false,"maxProbesPerSecond":50}`
	require.NoError(t, json.Unmarshal([]byte(in), &got))
	want := GRPCConfig{
		Config: Config{
			Interval:           config.Duration(250 * time.Millisecond),
			Timeout:            config.Duration(100 * time.Millisecond),
			Jitter:             0.5,
			UnhealthyThreshold: 4,
			HealthyThreshold:   1,
			MaxProbesPerSecond: 50,
		},
		Service: "pkg.Svc",
	}
	assert.Equal(t, want, got)

	got = DefaultGRPCConfig()
	require.NoError(t, json.Unmarshal([]byte(`{"interval":"1s"}`), &got))
	want = DefaultGRPCConfig()
	want.Interval = config.Duration(time.Second)
	assert.Equal(t, want, got)

	b, err := json.Marshal(DefaultGRPCConfig())
	require.NoError(t, err)
	assert.JSONEq(t, `{"enabled":true,"interval":"500ms","timeout":"250ms","jitter":0.2,"unhealthyThreshold":2,
		"healthyThreshold":2,"warmup":true,"service":"","unimplementedIsHealthy":true,"maxProbesPerSecond":200}`, string(b))
}
