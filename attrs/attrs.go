// Package attrs defines the endpoint attributes that Fulcrum's resolver writes
// and its balancer reads: the weight and the metadata of an endpoint.
//
// There is exactly one definition of each attribute, here, so that a custom
// resolver (or a custom Source of the fulcrum resolver) and the
// weighted_least_request balancer always agree.
//
// # Weight precedence
//
// The balancer takes an endpoint's weight from, in order:
//
//  1. Fulcrum's own attribute (SetWeight): used as given, 0 read as
//     DefaultWeight and values above MaxWeight clamped, each with a reason;
//  2. grpc-go's standard attribute (google.golang.org/grpc/experimental/balancer/weight),
//     which xDS sets from EDS load_balancing_weight (and ringhash and
//     pick_first read): see NormalizeAll for how it is scaled;
//  3. DefaultWeight.
//
// The fulcrum resolver sets both attributes to the same value, so any grpc-go
// policy that reads weights sees them too.
package attrs

import (
	"fmt"
	"maps"

	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

const (
	// DefaultWeight is the weight of an endpoint that carries none.
	DefaultWeight uint32 = 1
	// MaxWeight is the largest weight the balancer honours. Larger weights are
	// clamped to it (with a logged reason) so that one misconfigured entry
	// cannot starve every other endpoint or overflow the picker's arithmetic.
	MaxWeight uint32 = 10000
)

type weightKey struct{}
type metadataKey struct{}

// SetWeight returns a copy of ep that carries weight w. The balancer reads it
// with Weight. A weight of 0 is invalid: the balancer treats it as
// DefaultWeight and logs why; a weight above MaxWeight is clamped.
func SetWeight(ep resolver.Endpoint, w uint32) resolver.Endpoint {
	ep.Attributes = ep.Attributes.WithValue(weightKey{}, w)
	return ep
}

// Weight returns the weight that SetWeight stored in ep, and whether one was
// stored. It does not validate the weight; see Normalize.
func Weight(ep resolver.Endpoint) (uint32, bool) {
	w, ok := ep.Attributes.Value(weightKey{}).(uint32)
	return w, ok
}

// GRPCWeight returns the weight stored in ep by grpc-go's standard endpoint
// weight attribute (weight.Set), and whether a non-zero one was stored; grpc-go
// treats 0 as unset.
func GRPCWeight(ep resolver.Endpoint) (uint32, bool) {
	w := weight.FromEndpoint(ep).Weight
	return w, w != 0
}

// SetBoth returns a copy of ep that carries weight w in Fulcrum's attribute
// and in grpc-go's standard one, so that grpc-go's own policies (ring_hash,
// pick_first's weighted shuffling) see the weight too. w must be in
// [1, MaxWeight].
func SetBoth(ep resolver.Endpoint, w uint32) resolver.Endpoint {
	return weight.Set(SetWeight(ep, w), weight.EndpointInfo{Weight: w})
}

// Normalize returns the weight the balancer uses for ep alone, following the
// precedence in the package doc: Fulcrum's weight clamped to [1, MaxWeight],
// else grpc-go's weight (scaled into [1, MaxWeight] as NormalizeAll does for
// a set of one), else DefaultWeight. When a weight of Fulcrum's attribute had
// to be changed, reason says why (for the log); otherwise reason is empty.
func Normalize(ep resolver.Endpoint) (w uint32, reason string) {
	ws, reasons := NormalizeAll([]resolver.Endpoint{ep})
	return ws[0], reasons[0]
}

// NormalizeAll returns the weight the balancer uses for each endpoint of eps,
// in order, and for each a reason that is non-empty when Fulcrum's own weight
// had to be changed (see Normalize).
//
// Weights taken from grpc-go's attribute are scaled together: grpc-go's xDS
// client writes EDS weights as fixed-point fractions of the whole priority
// by default (gRFC A113: endpoint share x locality share x 2^31, so 1:2:4
// arrives as about 3.1e8:6.1e8:1.2e9; locality weight x endpoint weight
// with GRPC_EXPERIMENTAL_PF_WEIGHTED_SHUFFLING=false), which clamping one
// by one would flatten to MaxWeight each. When the largest of them exceeds
// MaxWeight, every one is multiplied by MaxWeight/largest (rounded, at least
// 1): ratios are kept to a resolution of 1/MaxWeight of the largest weight.
// Otherwise they are used as they are. This is expected, so it gives no
// reason.
func NormalizeAll(eps []resolver.Endpoint) (ws []uint32, reasons []string) {
	ws = make([]uint32, len(eps))
	reasons = make([]string, len(eps))
	var maxGRPC uint64
	for _, ep := range eps {
		if _, ok := Weight(ep); ok {
			continue
		}
		if g, ok := GRPCWeight(ep); ok {
			maxGRPC = max(maxGRPC, uint64(g))
		}
	}
	for i, ep := range eps {
		if _, ok := Weight(ep); ok {
			ws[i], reasons[i] = normalizeOwn(ep)
			continue
		}
		g, ok := GRPCWeight(ep)
		switch {
		case !ok:
			ws[i] = DefaultWeight
		case maxGRPC <= uint64(MaxWeight):
			ws[i] = g
		default:
			// Round half up; the product fits in 64 bits (2^32 x 10^4).
			scaled := (uint64(g)*uint64(MaxWeight) + maxGRPC/2) / maxGRPC
			ws[i] = uint32(max(scaled, 1))
		}
	}
	return ws, reasons
}

// normalizeOwn clamps Fulcrum's own weight of ep, which must be set.
func normalizeOwn(ep resolver.Endpoint) (w uint32, reason string) {
	w, _ = Weight(ep)
	switch {
	case w == 0:
		return DefaultWeight, fmt.Sprintf("weight: 0, must be >= 1; using %d", DefaultWeight)
	case w > MaxWeight:
		return MaxWeight, fmt.Sprintf("weight: %d, must be <= %d; clamped to %d", w, MaxWeight, MaxWeight)
	}
	return w, ""
}

// metadata is stored behind a type with an Equal method so that attribute
// comparison (used by grpc to detect changed endpoints) compares contents.
type metadata map[string]string

func (m metadata) Equal(o any) bool {
	om, ok := o.(metadata)
	return ok && maps.Equal(m, om)
}

// SetMetadata returns a copy of ep that carries a copy of md.
func SetMetadata(ep resolver.Endpoint, md map[string]string) resolver.Endpoint {
	ep.Attributes = ep.Attributes.WithValue(metadataKey{}, metadata(maps.Clone(md)))
	return ep
}

// Metadata returns a copy of the metadata that SetMetadata stored in ep, or
// nil.
func Metadata(ep resolver.Endpoint) map[string]string {
	md, _ := ep.Attributes.Value(metadataKey{}).(metadata)
	return maps.Clone(md)
}

// ZoneKey is the metadata key that holds an endpoint's zone (locality):
// every fulcrum:// source writes it, and the balancer and fulcrumhttp read
// it with Zone. There is one zone attribute, inside the metadata, so that a
// custom resolver's metadata and SetZone never disagree.
const ZoneKey = "zone"

// SetZone returns a copy of ep whose metadata carries zone z (its other
// metadata kept). An empty z removes the zone.
func SetZone(ep resolver.Endpoint, z string) resolver.Endpoint {
	md := Metadata(ep)
	if md == nil {
		md = map[string]string{}
	}
	if z == "" {
		delete(md, ZoneKey)
	} else {
		md[ZoneKey] = z
	}
	return SetMetadata(ep, md)
}

// Zone returns the zone of ep ("" when it carries none).
func Zone(ep resolver.Endpoint) string {
	md, _ := ep.Attributes.Value(metadataKey{}).(metadata)
	return md[ZoneKey]
}

type emptyHeldKey struct{}

// SetEmptyHeld returns s marked as held (or not): its source, a registry,
// now answers that the service has no endpoints, and the resolver keeps
// these for its emptyGrace (a registry restarting answers empty for a
// while). The balancer then fails RPCs at once when none of them is
// usable, rather than picking among them in panic mode.
func SetEmptyHeld(s resolver.State, held bool) resolver.State {
	if held {
		s.Attributes = s.Attributes.WithValue(emptyHeldKey{}, true)
	}
	return s
}

// EmptyHeld reports whether s is marked held by SetEmptyHeld.
func EmptyHeld(s resolver.State) bool {
	v, _ := s.Attributes.Value(emptyHeldKey{}).(bool)
	return v
}
