package healthprobe

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfig_DefaultIsValid(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	assert.Equal(t, Config{
		Service:                "",
		Interval:               5 * time.Second,
		Timeout:                time.Second,
		Jitter:                 0.2,
		UnhealthyThreshold:     3,
		HealthyThreshold:       2,
		UnimplementedIsHealthy: true,
	}, DefaultConfig())
}

func TestConfig_Validate(t *testing.T) {
	with := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"defaults", DefaultConfig(), ""},
		{"service any string", with(func(c *Config) { c.Service = "pkg.Svc" }), ""},
		{"interval zero", with(func(c *Config) { c.Interval = 0 }), "healthprobe: interval: 0s, must be between 10ms and 1h0m0s"},
		{"interval negative", with(func(c *Config) { c.Interval = -time.Second }), "healthprobe: interval: -1s, must be"},
		{"interval below min", with(func(c *Config) { c.Interval, c.Timeout = 9*time.Millisecond, time.Millisecond }), "healthprobe: interval: 9ms, must be"},
		{"interval at min", with(func(c *Config) { c.Interval, c.Timeout = 10*time.Millisecond, time.Millisecond }), ""},
		{"interval at max", with(func(c *Config) { c.Interval = time.Hour }), ""},
		{"interval above max", with(func(c *Config) { c.Interval = time.Hour + 1 }), "healthprobe: interval: 1h0m0.000000001s, must be between 10ms and 1h0m0s"},
		{"timeout zero", with(func(c *Config) { c.Timeout = 0 }), "healthprobe: timeout: 0s, must be >= 1ms"},
		{"timeout at min", with(func(c *Config) { c.Timeout = time.Millisecond }), ""},
		{"timeout equals interval", with(func(c *Config) { c.Timeout = c.Interval }), ""},
		{"timeout above interval", with(func(c *Config) { c.Timeout = c.Interval + 1 }), "healthprobe: timeout: 5.000000001s, must be <= interval (5s)"},
		{"jitter zero", with(func(c *Config) { c.Jitter = 0 }), ""},
		{"jitter max", with(func(c *Config) { c.Jitter = 0.5 }), ""},
		{"jitter above max", with(func(c *Config) { c.Jitter = 0.51 }), "healthprobe: jitter: 0.51, must be between 0 and 0.5"},
		{"jitter negative", with(func(c *Config) { c.Jitter = -0.1 }), "healthprobe: jitter: -0.1, must be between 0 and 0.5"},
		{"jitter NaN", with(func(c *Config) { c.Jitter = math.NaN() }), "healthprobe: jitter: NaN, must be"},
		{"unhealthyThreshold zero", with(func(c *Config) { c.UnhealthyThreshold = 0 }), "healthprobe: unhealthyThreshold: 0, must be >= 1"},
		{"unhealthyThreshold one", with(func(c *Config) { c.UnhealthyThreshold = 1 }), ""},
		{"healthyThreshold negative", with(func(c *Config) { c.HealthyThreshold = -2 }), "healthprobe: healthyThreshold: -2, must be >= 1"},
		{"healthyThreshold one", with(func(c *Config) { c.HealthyThreshold = 1 }), ""},
		{"unimplementedIsHealthy false", with(func(c *Config) { c.UnimplementedIsHealthy = false }), ""},
		{"zero value reports every bad field", Config{}, "interval: 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}

	t.Run("zero value lists all fields", func(t *testing.T) {
		err := Config{}.Validate()
		require.Error(t, err)
		for _, f := range []string{"interval:", "timeout:", "unhealthyThreshold:", "healthyThreshold:"} {
			assert.Contains(t, err.Error(), f)
		}
		assert.NotContains(t, err.Error(), "jitter:", "jitter 0 is valid")
	})
}

func TestConfig_UnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr string
	}{
		{
			name: "empty object keeps defaults",
			in:   `{}`,
			want: DefaultConfig(),
		},
		{
			name: "every field",
			in: `{"service":"pkg.Svc","interval":"250ms","timeout":"0.1s","jitter":0.5,
			      "unhealthyThreshold":4,"healthyThreshold":1,"unimplementedIsHealthy":false}`,
			want: Config{
				Service:            "pkg.Svc",
				Interval:           250 * time.Millisecond,
				Timeout:            100 * time.Millisecond,
				Jitter:             0.5,
				UnhealthyThreshold: 4,
				HealthyThreshold:   1,
			},
		},
		{
			name: "unknown fields ignored",
			in:   `{"warmup":true,"interval":"1s"}`,
			want: func() Config { c := DefaultConfig(); c.Interval = time.Second; return c }(),
		},
		{name: "bad duration", in: `{"interval":"5"}`, wantErr: `healthprobe: interval: "5", must be a duration such as "5s"`},
		{name: "bad timeout", in: `{"timeout":"soon"}`, wantErr: `healthprobe: timeout: "soon", must be a duration`},
		{name: "duration as number", in: `{"interval":5}`, wantErr: "healthprobe: "},
		{name: "not an object", in: `[]`, wantErr: "healthprobe: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DefaultConfig()
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.True(t, strings.Contains(err.Error(), tt.wantErr), "error %q does not contain %q", err, tt.wantErr)
				assert.Equal(t, DefaultConfig(), got, "a failed unmarshal must not change the config")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
