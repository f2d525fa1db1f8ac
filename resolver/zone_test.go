package resolver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

func TestParseStatic_Zones(t *testing.T) {
	got, err := parseStatic("10.0.0.1:80;zone=a,[fd00::1]:80=3;zone=us-east-1a,backend.internal:80=2,h:1;zone=Europe_West.1")
	require.NoError(t, err)
	assert.Equal(t, []Endpoint{
		{Addresses: []string{"10.0.0.1:80"}, Zone: "a"},
		{Addresses: []string{"[fd00::1]:80"}, Weight: 3, Zone: "us-east-1a"},
		{Addresses: []string{"backend.internal:80"}, Weight: 2},
		{Addresses: []string{"h:1"}, Zone: "Europe_West.1"},
	}, got)
}

// Every malformed zone fails with the entry, the field, the value and what
// is allowed.
func TestParseStatic_BadZones(t *testing.T) {
	for _, tt := range []struct{ in, wantErr string }{
		{"h:1;zone=", `static entry 1 "h:1;zone=": zone: "", must be non-empty letters, digits, '-', '_' and '.'`},
		{"h:1;", `static entry 1 "h:1;": parameter: "", must be zone=<zone>`},
		{"h:1;zone", `static entry 1 "h:1;zone": parameter: "zone", must be zone=<zone>`},
		{"h:1;az=a", `static entry 1 "h:1;az=a": parameter: "az=a", must be zone=<zone>`},
		{"h:1;zone=a;zone=b", `static entry 1 "h:1;zone=a;zone=b": zone: given twice, must be given at most once`},
		{"h:1,h:2;zone=a b", `static entry 2 "h:2;zone=a b": zone: "a b", must be non-empty letters, digits, '-', '_' and '.'`},
		{"h:1;zone=a=2", `static entry 1 "h:1;zone=a=2": zone: "a=2", must be non-empty letters, digits, '-', '_' and '.'`},
		{"h:1;zone=a/b", `zone: "a/b", must be`},
		// The weight goes before the zone: after it, it is part of the zone.
		{"h:1;zone=a=2", `zone: "a=2"`},
		{"h:1=0;zone=a", `static entry 1 "h:1=0;zone=a": weight: "0", must be an integer in [1, 10000]`},
		{"[::1;zone=a]:80", `static entry 1 "[::1;zone=a]:80": address "[::1": missing ']' in address`},
	} {
		_, err := parseStatic(tt.in)
		assert.ErrorContains(t, err, tt.wantErr, "input %q", tt.in)
	}
}

// The common layer reads Zone, else metadata "zone", skips an endpoint whose
// two disagree, and hands the zone on through attrs.SetZone (the one zone
// attribute), so attrs.Zone sees it and a zone change is a change.
func TestCommon_ZoneInAttributes(t *testing.T) {
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
	src.send(Update{Endpoints: []Endpoint{
		{Addresses: []string{"10.0.0.1:1"}, Zone: "a", Metadata: map[string]string{"rack": "r1"}},
		{Addresses: []string{"10.0.0.2:1"}, Metadata: map[string]string{attrs.ZoneKey: "b"}},
		{Addresses: []string{"10.0.0.3:1"}, Zone: "c", Metadata: map[string]string{attrs.ZoneKey: "c"}},
		{Addresses: []string{"10.0.0.4:1"}, Zone: "a", Metadata: map[string]string{attrs.ZoneKey: "b"}}, // skipped
		{Addresses: []string{"10.0.0.5:1"}},
	}})
	evs := rec.waitEvents(t, 1)
	got := evs[0].state.Endpoints
	require.Equal(t, []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.5:1"}, addrsOf(evs[0].state))
	var zones []string
	for _, ep := range got {
		zones = append(zones, attrs.Zone(ep))
	}
	assert.Equal(t, []string{"a", "b", "c", ""}, zones)
	assert.Equal(t, map[string]string{"rack": "r1", attrs.ZoneKey: "a"}, attrs.Metadata(got[0]), "other metadata kept beside the zone")
	assert.Nil(t, attrs.Metadata(got[3]), "no zone, no metadata")

	// Only the zone changes: pushed.
	rec.waitHandled(t, 1)
	src.send(Update{Endpoints: []Endpoint{{Addresses: []string{"10.0.0.1:1"}, Zone: "a"}}})
	rec.waitEvents(t, 2)
	src.send(Update{Endpoints: []Endpoint{{Addresses: []string{"10.0.0.1:1"}, Zone: "b"}}})
	evs = rec.waitEvents(t, 3)
	assert.Equal(t, "a", attrs.Zone(evs[1].state.Endpoints[0]))
	assert.Equal(t, "b", attrs.Zone(evs[2].state.Endpoints[0]))
}

func TestEndpointZoneOf(t *testing.T) {
	for _, tt := range []struct {
		ep      Endpoint
		want    string
		wantErr string
	}{
		{ep: Endpoint{}, want: ""},
		{ep: Endpoint{Zone: "a"}, want: "a"},
		{ep: Endpoint{Metadata: map[string]string{"zone": "b"}}, want: "b"},
		{ep: Endpoint{Zone: "a", Metadata: map[string]string{"zone": "a"}}, want: "a"},
		{ep: Endpoint{Zone: "a", Metadata: map[string]string{"zone": ""}}, want: "a"},
		{ep: Endpoint{Zone: "a", Metadata: map[string]string{"zone": "b"}}, wantErr: `zone: "a", must equal metadata.zone "b" when both are given`},
	} {
		got, err := tt.ep.ZoneOf()
		if tt.wantErr != "" {
			assert.EqualError(t, err, tt.wantErr)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%+v", tt.ep)
	}
}

func TestParseFile_Zones(t *testing.T) {
	fc, problems, err := parseFile([]byte(`{"endpoints":[
		{"addresses":["10.0.0.1:1"],"zone":"a","metadata":{"rack":"r1"}},
		{"addresses":["10.0.0.2:1"],"metadata":{"zone":"b"}},
		{"addresses":["10.0.0.3:1"],"zone":"c","metadata":{"zone":"c"}},
		{"addresses":["10.0.0.4:1"],"zone":"a","metadata":{"zone":"b"}},
		{"addresses":["10.0.0.5:1"],"zone":7},
		{"addresses":["10.0.0.6:1"],"zone":""}]}`))
	require.NoError(t, err)
	assert.Equal(t, []Endpoint{
		{Addresses: []string{"10.0.0.1:1"}, Zone: "a", Metadata: map[string]string{"rack": "r1"}},
		{Addresses: []string{"10.0.0.2:1"}, Metadata: map[string]string{"zone": "b"}},
		{Addresses: []string{"10.0.0.3:1"}, Zone: "c", Metadata: map[string]string{"zone": "c"}},
		{Addresses: []string{"10.0.0.6:1"}},
	}, fc.endpoints)
	assert.Equal(t, []string{
		`endpoints[3] skipped: zone: "a", must equal metadata.zone "b" when both are given`,
		`endpoints[4] skipped: zone: 7, must be a string`,
	}, problems)
}
