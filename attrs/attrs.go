// Package attrs defines the endpoint attributes that Fulcrum's resolver writes
// and its balancer reads: the weight and the metadata of an endpoint.
//
// There is exactly one definition of each attribute, here, so that a custom
// resolver (or a custom Source of the fulcrum resolver) and the
// weighted_least_request balancer always agree.
package attrs

import (
	"fmt"
	"maps"

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

// Normalize returns the weight the balancer uses for ep: DefaultWeight when
// none is set, and the stored weight clamped to [1, MaxWeight] otherwise. When
// the stored weight had to be changed, reason says why (for the log);
// otherwise reason is empty.
func Normalize(ep resolver.Endpoint) (w uint32, reason string) {
	w, ok := Weight(ep)
	switch {
	case !ok:
		return DefaultWeight, ""
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
