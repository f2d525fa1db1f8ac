package driver

import (
	"slices"
	"strings"

	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// Member is one endpoint of a resolver update, as the engine knows it.
type Member struct {
	endpointset.Spec
	// Endpoint is the resolver's endpoint the spec was made from.
	Endpoint resolver.Endpoint
	// Warning says why its weight was adjusted ("" if it was not).
	Warning string
}

// Key identifies an endpoint by its set of addresses, as grpc-go's
// EndpointMap does: the sorted addresses, joined by commas.
func Key(ep resolver.Endpoint) string {
	addrs := make([]string, len(ep.Addresses))
	for i, a := range ep.Addresses {
		addrs[i] = a.Addr
	}
	slices.Sort(addrs)
	return strings.Join(addrs, ",")
}

// Members turns a resolver update into the engine's specs, for both
// adapters: endpoints without addresses are skipped, a repeated endpoint
// (same addresses) counts once, weights are normalised as a set (grpc-go's
// xDS weights, fractions of the priority in gRFC A113, are scaled down
// together), and metadata (zone, ...) is carried over.
func Members(eps []resolver.Endpoint) []Member {
	ws, reasons := attrs.NormalizeAll(eps)
	out := make([]Member, 0, len(eps))
	seen := make(map[string]bool, len(eps))
	for i, ep := range eps {
		if len(ep.Addresses) == 0 {
			continue
		}
		key := Key(ep)
		if seen[key] {
			continue
		}
		seen[key] = true
		addrs := make([]string, len(ep.Addresses))
		for j, a := range ep.Addresses {
			addrs[j] = a.Addr
		}
		out = append(out, Member{
			Spec:     endpointset.Spec{Key: key, Addrs: addrs, Weight: ws[i], Zone: attrs.Zone(ep), Metadata: attrs.Metadata(ep)},
			Endpoint: ep,
			Warning:  reasons[i],
		})
	}
	return out
}
