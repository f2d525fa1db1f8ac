package consul

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/resolver"
)

// Metadata keys the source adds to each endpoint beside the service's own
// meta. Consul meta keys may only hold letters, digits, '-' and '_', so
// these cannot collide with them.
const (
	MetaTags    = "consul.tags"   // the instance's tags, comma-separated, in Consul's order
	MetaID      = "consul.id"     // the service instance ID
	MetaNode    = "consul.node"   // the node name
	MetaHealth  = "consul.health" // "passing" or "warning"
	MetaNodeDC  = "consul.dc"     // the node's datacenter, when Consul gives it
	tagsSepChar = ","
)

// endpointSet is what one answer of the health endpoint holds.
type endpointSet struct {
	eps        []resolver.Endpoint // usable instances, sorted by address
	registered int                 // instances in the answer, whatever their health
	problems   []string            // instances skipped for bad data, for the log
}

// endpoints converts an answer of /v1/health/service/<name> into endpoints:
// instances whose checks all pass (and, with includeWarning, those whose
// worst check is warning), at the service address (the node's when empty),
// weighted by Weights.Passing or Weights.Warning, in the zone that meta key
// zoneMeta of the service, else of the node, names (see zoneOf).
func endpoints(entries []*api.ServiceEntry, includeWarning bool, zoneMeta string) endpointSet {
	var set endpointSet
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		set.registered++
		s := e.Service
		// AggregatedStatus counts node and service maintenance as their
		// own state and returns the worst of the checks otherwise, which
		// is Consul's own "passing" filter when it is passing.
		status := e.Checks.AggregatedStatus()
		var weight int
		switch {
		case status == api.HealthPassing:
			weight = s.Weights.Passing
		case status == api.HealthWarning && includeWarning:
			weight = s.Weights.Warning
			if weight <= 0 {
				continue // Consul's "do not send traffic while warning"
			}
		default:
			continue
		}
		host := s.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" || s.Port <= 0 || s.Port > 65535 {
			set.problems = append(set.problems, fmt.Sprintf("instance %q skipped: address %q, port %d: must have a service or node address and a port in [1, 65535]", s.ID, host, s.Port))
			continue
		}
		md := make(map[string]string, len(s.Meta)+5)
		maps.Copy(md, s.Meta)
		// The zone attribute is the metadata key attrs.ZoneKey: the one
		// zoneOf chose replaces whatever a service meta of that name held
		// (with zoneMeta=az, a meta "zone" is not the zone).
		delete(md, attrs.ZoneKey)
		md[MetaID] = s.ID
		md[MetaHealth] = status
		if len(s.Tags) > 0 {
			md[MetaTags] = strings.Join(s.Tags, tagsSepChar)
		}
		if e.Node != nil {
			md[MetaNode] = e.Node.Node
			if e.Node.Datacenter != "" {
				md[MetaNodeDC] = e.Node.Datacenter
			}
		}
		set.eps = append(set.eps, resolver.Endpoint{
			Addresses: []string{net.JoinHostPort(host, strconv.Itoa(s.Port))},
			Weight:    uint32(max(weight, 0)), // 0: the resolver's default weight
			Metadata:  md,
			Zone:      zoneOf(e, zoneMeta),
		})
	}
	slices.SortFunc(set.eps, func(a, b resolver.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Addresses[0], b.Addresses[0]), cmp.Compare(a.Metadata[MetaID], b.Metadata[MetaID]))
	})
	return set
}

// zoneOf returns the zone of an instance: its service meta key (set per
// instance at registration) first, since it is the more specific, then the
// same key of its node's meta (node_meta in the agent's configuration, one
// setting for every service on the node).
func zoneOf(e *api.ServiceEntry, key string) string {
	if z := e.Service.Meta[key]; z != "" {
		return z
	}
	if e.Node != nil {
		return e.Node.Meta[key]
	}
	return ""
}

// equalSets compares two sorted sets.
func equalSets(a, b []resolver.Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y resolver.Endpoint) bool {
		return x.Weight == y.Weight && x.Zone == y.Zone && slices.Equal(x.Addresses, y.Addresses) && maps.Equal(x.Metadata, y.Metadata)
	})
}
