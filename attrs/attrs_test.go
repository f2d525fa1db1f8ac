package attrs_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

// ep builds an endpoint; own and grpc are the weights stored in Fulcrum's and
// grpc-go's attributes, a negative value meaning "not set".
func ep(own, grpc int64) resolver.Endpoint {
	e := resolver.Endpoint{Addresses: []resolver.Address{{Addr: "127.0.0.1:1"}}}
	if own >= 0 {
		e = attrs.SetWeight(e, uint32(own))
	}
	if grpc >= 0 {
		e = weight.Set(e, weight.EndpointInfo{Weight: uint32(grpc)})
	}
	return e
}

const none = -1

// fixed is the weight grpc-go's xDS client writes for a share of an EDS
// priority (gRFC A113: share x 2^31, truncated).
func fixed(num, den uint64) int64 { return int64(num << 31 / den) }

func TestNormalizeAll_Precedence(t *testing.T) {
	tests := []struct {
		name        string
		eps         []resolver.Endpoint
		want        []uint32
		wantReasons []bool
	}{
		{name: "no attribute: default", eps: []resolver.Endpoint{ep(none, none)}, want: []uint32{attrs.DefaultWeight}},
		{name: "fulcrum only", eps: []resolver.Endpoint{ep(3, none)}, want: []uint32{3}},
		{name: "grpc only, small: used as is", eps: []resolver.Endpoint{ep(none, 1), ep(none, 2), ep(none, 4)}, want: []uint32{1, 2, 4}},
		{name: "fulcrum wins over grpc", eps: []resolver.Endpoint{ep(3, 7)}, want: []uint32{3}},
		{name: "grpc 0 means unset", eps: []resolver.Endpoint{ep(none, 0)}, want: []uint32{attrs.DefaultWeight}},
		{name: "fulcrum 0 is default with a reason", eps: []resolver.Endpoint{ep(0, 5)}, want: []uint32{attrs.DefaultWeight}, wantReasons: []bool{true}},
		{name: "fulcrum above max is clamped with a reason", eps: []resolver.Endpoint{ep(int64(attrs.MaxWeight)+1, none)}, want: []uint32{attrs.MaxWeight}, wantReasons: []bool{true}},
		{
			// EDS weights 1:2:4 in one locality, as grpc-go 1.85 writes them.
			name: "grpc fixed-point shares keep their ratio",
			eps:  []resolver.Endpoint{ep(none, fixed(1, 7)), ep(none, fixed(2, 7)), ep(none, fixed(4, 7))},
			want: []uint32{2500, 5000, 10000},
		},
		{
			// Two localities of weight 1 and 3, one endpoint each.
			name: "grpc locality shares keep their ratio",
			eps:  []resolver.Endpoint{ep(none, fixed(1, 4)), ep(none, fixed(3, 4))},
			want: []uint32{3333, 10000},
		},
		{
			name: "tiny grpc share floors at 1",
			eps:  []resolver.Endpoint{ep(none, 1), ep(none, 1<<31)},
			want: []uint32{1, attrs.MaxWeight},
		},
		{
			// Fulcrum's weights do not enter the scale of grpc-go's.
			name: "mixed: scale over grpc-only endpoints",
			eps:  []resolver.Endpoint{ep(9, 1<<31), ep(none, 1<<30), ep(none, 1<<29), ep(none, none)},
			want: []uint32{9, 10000, 5000, attrs.DefaultWeight},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, reasons := attrs.NormalizeAll(tc.eps)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("NormalizeAll weights (-want +got):\n%s", diff)
			}
			for i, r := range reasons {
				want := i < len(tc.wantReasons) && tc.wantReasons[i]
				if (r != "") != want {
					t.Errorf("endpoint %d: reason %q, want a reason: %v", i, r, want)
				}
			}
		})
	}
}

func TestNormalize_SingleEndpointFollowsPrecedence(t *testing.T) {
	for _, tc := range []struct {
		ep   resolver.Endpoint
		want uint32
	}{
		{ep(none, none), attrs.DefaultWeight},
		{ep(4, 9), 4},
		{ep(none, 9), 9},
		{ep(none, fixed(1, 3)), attrs.MaxWeight}, // alone, a share scales to the top
	} {
		if got, _ := attrs.Normalize(tc.ep); got != tc.want {
			t.Errorf("Normalize(%v) = %d, want %d", tc.ep.Attributes, got, tc.want)
		}
	}
	_, reason := attrs.Normalize(ep(0, none))
	if want := "weight: 0, must be >= 1; using 1"; reason != want {
		t.Errorf("Normalize(weight 0) reason = %q, want %q", reason, want)
	}
}

func TestSetBoth_SetsFulcrumAndGRPCWeight(t *testing.T) {
	e := attrs.SetBoth(ep(none, none), 7)
	if w, ok := attrs.Weight(e); !ok || w != 7 {
		t.Errorf("Weight = %d, %v; want 7, true", w, ok)
	}
	if w := weight.FromEndpoint(e).Weight; w != 7 {
		t.Errorf("grpc-go weight = %d, want 7", w)
	}
}

// TestSetZone: the zone lives in the metadata under ZoneKey; other
// metadata is kept; an empty zone removes it; ep itself is not changed.
func TestSetZone(t *testing.T) {
	ep := attrs.SetMetadata(resolver.Endpoint{Addresses: []resolver.Address{{Addr: "a:1"}}}, map[string]string{"version": "2"})
	z := attrs.SetZone(ep, "eu-1a")
	if got := attrs.Zone(z); got != "eu-1a" {
		t.Errorf("Zone = %q, want eu-1a", got)
	}
	if md := attrs.Metadata(z); md["version"] != "2" || md[attrs.ZoneKey] != "eu-1a" {
		t.Errorf("metadata %v, want version 2 kept and zone eu-1a", md)
	}
	if got := attrs.Zone(ep); got != "" {
		t.Errorf("SetZone changed its argument: zone %q", got)
	}
	if got := attrs.Zone(attrs.SetZone(z, "")); got != "" {
		t.Errorf("zone after SetZone(\"\") = %q, want none", got)
	}
	if got := attrs.Zone(resolver.Endpoint{}); got != "" {
		t.Errorf("zone of a bare endpoint = %q, want none", got)
	}
}
