package picker

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
	want := Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(3 * time.Second)}
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
	if got, want := string(b), `{"choiceCount":2,"activeRequestBias":1,"latencyAware":true,"latencyDecay":"3s"}`; got != want {
		t.Errorf("JSON of the defaults = %s, want %s", got, want)
	}
}

// TestConfig_Validate pins every bound: the edge accepted, just outside
// rejected.
func TestConfig_Validate(t *testing.T) {
	ms := func(n int) config.Duration { return config.Duration(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"choiceCount 2", func(c *Config) { c.ChoiceCount = 2 }, ""},
		{"choiceCount 10", func(c *Config) { c.ChoiceCount = 10 }, ""},
		{"choiceCount 1", func(c *Config) { c.ChoiceCount = 1 }, "choiceCount: 1, must be >= 2"},
		{"choiceCount 11 unclamped", func(c *Config) { c.ChoiceCount = 11 }, "choiceCount: 11, must be in [2, 10]"},
		{"activeRequestBias 0", func(c *Config) { c.ActiveRequestBias = 0 }, ""},
		{"activeRequestBias 10", func(c *Config) { c.ActiveRequestBias = 10 }, ""},
		{"activeRequestBias -0.01", func(c *Config) { c.ActiveRequestBias = -0.01 }, "activeRequestBias: -0.01, must be in [0, 10]"},
		{"activeRequestBias 10.01", func(c *Config) { c.ActiveRequestBias = 10.01 }, "activeRequestBias: 10.01, must be in [0, 10]"},
		{"activeRequestBias NaN", func(c *Config) { c.ActiveRequestBias = math.NaN() }, "activeRequestBias: NaN, must be in [0, 10]"},
		{"latencyDecay 100ms", func(c *Config) { c.LatencyDecay = ms(100) }, ""},
		{"latencyDecay 10m", func(c *Config) { c.LatencyDecay = ms(600000) }, ""},
		{"latencyDecay 99ms", func(c *Config) { c.LatencyDecay = ms(99) }, "latencyDecay: 99ms, must be in [100ms, 10m0s]"},
		{"latencyDecay 10m1ms", func(c *Config) { c.LatencyDecay = ms(600001) }, "latencyDecay: 10m0.001s, must be in [100ms, 10m0s]"},
		{"every bad field", func(c *Config) { *c = Config{} },
			"choiceCount: 0, must be >= 2\nlatencyDecay: 0s, must be in [100ms, 10m0s]"},
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

// TestConfig_Clamp: above 10 becomes 10 with a warning (gRFC A48); 10 and
// below are left alone without one.
func TestConfig_Clamp(t *testing.T) {
	for _, tc := range []struct {
		in, want    int
		wantWarning string
	}{
		{11, 10, "choiceCount: 11, above 10: using 10 (gRFC A48)"},
		{1000, 10, "choiceCount: 1000, above 10: using 10 (gRFC A48)"},
		{10, 10, ""},
		{2, 2, ""},
		{1, 1, ""}, // rejected by Validate, not Clamp's business
	} {
		c := Config{ChoiceCount: tc.in}
		warnings := c.Clamp()
		if c.ChoiceCount != tc.want {
			t.Errorf("Clamp() of %d: ChoiceCount = %d, want %d", tc.in, c.ChoiceCount, tc.want)
		}
		var want []string
		if tc.wantWarning != "" {
			want = []string{tc.wantWarning}
		}
		if diff := cmp.Diff(want, warnings); diff != "" {
			t.Errorf("Clamp() of %d warnings diff (-want +got):\n%s", tc.in, diff)
		}
	}
}
