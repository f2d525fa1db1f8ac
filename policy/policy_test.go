package policy_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/picker"
	"github.com/fulcrum-lb/fulcrum/policy"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// adapterConfig is an adapter's configuration as each adapter writes one:
// the shared parts where the JSON puts them, plus fields of its own.
type (
	pickerConfig = picker.Config
	setConfig    = endpointset.Config
)

type adapterConfig struct {
	pickerConfig
	setConfig
	Breaker struct {
		breaker.Config
		Codes []int `json:"codes"`
	} `json:"breaker"`
	HealthProbe struct {
		probe.Config
		Path string `json:"path"`
	} `json:"healthProbe"`
	Own int `json:"own"`
}

func (c *adapterConfig) Parts() policy.Parts {
	return policy.Parts{Picker: &c.pickerConfig, EndpointSet: &c.setConfig, Breaker: &c.Breaker.Config, HealthProbe: &c.HealthProbe.Config}
}

func (c *adapterConfig) ValidateOwn() error {
	if c.Own < 0 {
		return config.Invalid("own", c.Own, ">= 0")
	}
	return nil
}

func newAdapterConfig() *adapterConfig {
	d := policy.Default()
	c := &adapterConfig{}
	c.pickerConfig, c.setConfig = d.Picker, d.EndpointSet
	c.Breaker.Config, c.HealthProbe.Config = d.Breaker, d.HealthProbe
	return c
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		js                     string
		wantUnknown, wantWarns []string
		wantErr                string
		check                  func(*adapterConfig) bool
	}{
		{name: "empty keeps defaults", js: ``, check: func(c *adapterConfig) bool { return c.Parts().Shared() == policy.Default() }},
		{name: "shared and own fields at their paths", js: `{"choiceCount":3,"breaker":{"window":"20s","codes":[1]},"healthProbe":{"interval":"1s","path":"/h"},"own":4}`,
			check: func(c *adapterConfig) bool {
				return c.ChoiceCount == 3 && c.Breaker.Window == config.Duration(20e9) && c.Breaker.Codes[0] == 1 &&
					c.HealthProbe.Interval == config.Duration(1e9) && c.HealthProbe.Path == "/h" && c.Own == 4
			}},
		{name: "unknown at any depth", js: `{"nope":1,"breaker":{"nope":2}}`, wantUnknown: []string{"breaker.nope", "nope"}},
		{name: "clamp with a warning", js: `{"choiceCount":11}`, wantWarns: []string{"comp: choiceCount: 11, above 10: using 10 (gRFC A48)"},
			check: func(c *adapterConfig) bool { return c.ChoiceCount == 10 }},
		{name: "shared field out of bounds", js: `{"breaker":{"window":"100ms"}}`, wantErr: "comp: breaker.window: 100ms, must be in [1s, 10m0s]"},
		{name: "own field out of bounds", js: `{"own":-1}`, wantErr: "comp: own: -1, must be >= 0"},
		{name: "wrong type", js: `{"healthProbe":{"interval":5}}`, wantErr: `comp: healthProbe.interval: 5, must be a duration string such as "5s"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newAdapterConfig()
			unknown, warns, err := policy.Parse("comp", []byte(tc.js), c)
			if diff := cmp.Diff(tc.wantUnknown, unknown); diff != "" {
				t.Errorf("unknown diff (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantWarns, warns); diff != "" {
				t.Errorf("warnings diff (-want +got):\n%s", diff)
			}
			switch {
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error = %v", err)
			}
			if tc.check != nil && !tc.check(c) {
				t.Errorf("parsed config %+v does not hold what %s sets", c, tc.js)
			}
		})
	}
}

func TestShared_ValidateJoinsEveryField(t *testing.T) {
	s := policy.Default()
	s.Picker.ChoiceCount = 1
	s.HealthProbe.Jitter = 0.9
	err := s.Validate()
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != 2 {
		t.Fatalf("Validate() = %v, want two joined errors", err)
	}
	if got, want := err.Error(), "choiceCount: 1, must be >= 2\nhealthProbe.jitter: 0.9, must be in [0, 0.5]"; got != want {
		t.Errorf("Validate() = %q, want %q", got, want)
	}
}

// TestParse_LocalZone: localZone comes from the JSON, else from
// FULCRUM_LOCAL_ZONE; a bad value from either is an error naming where it
// came from.
func TestParse_LocalZone(t *testing.T) {
	t.Setenv(endpointset.LocalZoneEnv, "env-zone")
	for _, tc := range []struct{ js, want string }{
		{`{}`, "env-zone"},
		{`{"localZone":""}`, "env-zone"},
		{`{"localZone":"us-east-1a"}`, "us-east-1a"},
	} {
		cfg := newAdapterConfig()
		if _, _, err := policy.Parse("comp", []byte(tc.js), cfg); err != nil || cfg.LocalZone != tc.want {
			t.Errorf("Parse(%s): localZone %q, %v; want %q", tc.js, cfg.LocalZone, err, tc.want)
		}
	}
	_, _, err := policy.Parse("comp", []byte(`{"localZone":"a b"}`), newAdapterConfig())
	if want := `comp: localZone: "a b", must be at most 128 bytes without spaces or control characters`; err == nil || err.Error() != want {
		t.Errorf("bad localZone: %v, want %s", err, want)
	}
	t.Setenv(endpointset.LocalZoneEnv, "a\tb")
	_, _, err = policy.Parse("comp", []byte(`{}`), newAdapterConfig())
	if want := `comp: localZone: "a\tb", must be at most 128 bytes without spaces or control characters (environment variable FULCRUM_LOCAL_ZONE)`; err == nil || err.Error() != want {
		t.Errorf("bad %s: %v, want %s", endpointset.LocalZoneEnv, err, want)
	}
	t.Setenv(endpointset.LocalZoneEnv, "")
	cfg := newAdapterConfig()
	if _, _, err := policy.Parse("comp", []byte(`{}`), cfg); err != nil || cfg.LocalZone != "" {
		t.Errorf("no zone anywhere: localZone %q, %v; want zone-unaware", cfg.LocalZone, err)
	}
}
