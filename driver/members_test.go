package driver

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

func ep(addrs ...string) resolver.Endpoint {
	e := resolver.Endpoint{}
	for _, a := range addrs {
		e.Addresses = append(e.Addresses, resolver.Address{Addr: a})
	}
	return e
}

// TestKey_SortedAddresses: the key is the sorted addresses, joined by
// commas, whatever their order in the endpoint.
func TestKey_SortedAddresses(t *testing.T) {
	for _, tc := range []struct {
		ep   resolver.Endpoint
		want string
	}{
		{ep("10.0.0.1:80"), "10.0.0.1:80"},
		{ep("[::1]:80", "10.0.0.1:80"), "10.0.0.1:80,[::1]:80"},
		{ep("10.0.0.1:80", "[::1]:80"), "10.0.0.1:80,[::1]:80"},
		{ep("c:1", "a:1", "b:1"), "a:1,b:1,c:1"},
		{ep(), ""},
	} {
		if got := Key(tc.ep); got != tc.want {
			t.Errorf("Key(%v) = %q, want %q", tc.ep.Addresses, got, tc.want)
		}
	}
}

// TestMembers_DedupAndSkip: an endpoint without addresses is skipped; one
// with the same set of addresses as an earlier one (in any order) counts
// once, as the first; the spec keeps the resolver's address order and the
// member its resolver endpoint.
func TestMembers_DedupAndSkip(t *testing.T) {
	eps := []resolver.Endpoint{
		ep("b:1", "a:1"),
		ep(),
		attrs.SetWeight(ep("a:1", "b:1"), 7), // same set as the first
		ep("c:1"),
		ep("c:1"),
	}
	ms := Members(eps)
	var keys []string
	for _, m := range ms {
		keys = append(keys, m.Key)
	}
	if want := []string{"a:1,b:1", "c:1"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	if got := ms[0].Addrs; !slices.Equal(got, []string{"b:1", "a:1"}) {
		t.Errorf("first member's addresses %v, want the resolver's order [b:1 a:1]", got)
	}
	if ms[0].Weight != attrs.DefaultWeight || Key(ms[0].Endpoint) != "a:1,b:1" || len(ms[0].Endpoint.Addresses) != 2 {
		t.Errorf("first member %+v: want the first endpoint (weight %d), not its duplicate", ms[0], attrs.DefaultWeight)
	}
	if len(Members(nil)) != 0 || len(Members([]resolver.Endpoint{ep()})) != 0 {
		t.Error("Members of no endpoint, or of one without addresses, is not empty")
	}
}

// TestMembers_Weights: Fulcrum's weight is used as given, 0 and values
// above MaxWeight are corrected with a warning; grpc-go's weights are
// scaled together when the largest exceeds MaxWeight (attrs.NormalizeAll);
// no weight is DefaultWeight.
func TestMembers_Weights(t *testing.T) {
	grpcW := func(e resolver.Endpoint, w uint32) resolver.Endpoint {
		return weight.Set(e, weight.EndpointInfo{Weight: w})
	}
	ms := Members([]resolver.Endpoint{
		attrs.SetWeight(ep("a:1"), 3),
		attrs.SetWeight(ep("b:1"), 0),
		attrs.SetWeight(ep("c:1"), attrs.MaxWeight+1),
		ep("d:1"),
		grpcW(ep("e:1"), 1<<30),
		grpcW(ep("f:1"), 1<<31),
	})
	want := []struct {
		w    uint32
		warn bool
	}{{3, false}, {attrs.DefaultWeight, true}, {attrs.MaxWeight, true}, {attrs.DefaultWeight, false}, {attrs.MaxWeight / 2, false}, {attrs.MaxWeight, false}}
	if len(ms) != len(want) {
		t.Fatalf("%d members, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if m.Weight != want[i].w || (m.Warning != "") != want[i].warn {
			t.Errorf("%s: weight %d, warning %q; want %d, a warning: %v", m.Key, m.Weight, m.Warning, want[i].w, want[i].warn)
		}
	}
	if w := ms[1].Warning; !strings.Contains(w, "weight: 0, must be >= 1") {
		t.Errorf("warning for weight 0: %q, want the standard wording", w)
	}
}

// TestMembers_Metadata: an endpoint's metadata is carried into its spec
// (a copy: changing it does not change the endpoint's).
func TestMembers_Metadata(t *testing.T) {
	md := map[string]string{"zone": "eu-west-1a", "version": "2"}
	e := attrs.SetMetadata(ep("a:1"), md)
	ms := Members([]resolver.Endpoint{e, ep("b:1")})
	if !maps.Equal(ms[0].Metadata, md) {
		t.Errorf("metadata %v, want %v", ms[0].Metadata, md)
	}
	if ms[1].Metadata != nil {
		t.Errorf("metadata of an endpoint without any: %v, want nil", ms[1].Metadata)
	}
	if ms[0].Zone != "eu-west-1a" || ms[1].Zone != "" {
		t.Errorf("zones %q, %q; want the metadata's eu-west-1a, then none", ms[0].Zone, ms[1].Zone)
	}
	ms[0].Metadata["zone"] = "changed"
	if got := attrs.Metadata(e)["zone"]; got != "eu-west-1a" {
		t.Errorf("changing a spec's metadata changed the endpoint's: zone %q", got)
	}
}
