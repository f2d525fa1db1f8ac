package resolver

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"google.golang.org/grpc/resolver"
)

// endpoint is the canonical form of an Endpoint.
type endpoint struct {
	addrs  []string          // as the source ordered them (pick_first tries them in order), deduplicated
	key    string            // sorted addrs: identity for sorting and comparing
	weight uint32            // in [1, attrs.MaxWeight]
	md     map[string]string // without attrs.ZoneKey
	zone   string
}

func (e endpoint) equal(o endpoint) bool {
	return e.key == o.key && e.weight == o.weight && e.zone == o.zone && maps.Equal(e.md, o.md)
}

func (e endpoint) String() string {
	s := strings.Join(e.addrs, ",")
	if e.weight != attrs.DefaultWeight {
		s += fmt.Sprintf("=%d", e.weight)
	}
	if e.zone != "" {
		s += ";zone=" + e.zone
	}
	if len(e.md) > 0 {
		s += fmt.Sprintf("%v", e.md)
	}
	return s
}

// canonicalize validates, deduplicates and sorts a source's endpoints. An
// address may belong to one endpoint only: the first that lists it keeps it.
// Endpoints are sorted by their sorted addresses so that two reports of the
// same set compare equal whatever order the source used. problems says what
// was dropped or changed, for the log.
func canonicalize(in []Endpoint) (out []endpoint, problems []string) {
	seen := make(map[string]int, len(in))
	for i, e := range in {
		var addrs []string
		for _, a := range e.Addresses {
			if a == "" {
				problems = append(problems, fmt.Sprintf("endpoint %d: empty address dropped", i))
				continue
			}
			if j, dup := seen[a]; dup {
				if j != i {
					problems = append(problems, fmt.Sprintf("endpoint %d: address %s dropped, already in endpoint %d", i, a, j))
				}
				continue
			}
			seen[a] = i
			addrs = append(addrs, a)
		}
		if len(addrs) == 0 {
			problems = append(problems, fmt.Sprintf("endpoint %d: skipped, it has no usable address", i))
			continue
		}
		w := e.Weight
		switch {
		case w == 0:
			w = attrs.DefaultWeight
		case w > attrs.MaxWeight:
			problems = append(problems, fmt.Sprintf("endpoint %d %v: weight: %d, must be <= %d; clamped", i, addrs, w, attrs.MaxWeight))
			w = attrs.MaxWeight
		}
		zone, err := e.ZoneOf()
		if err != nil {
			problems = append(problems, fmt.Sprintf("endpoint %d %v: skipped: %v", i, addrs, err))
			continue
		}
		var md map[string]string
		if len(e.Metadata) > 0 {
			md = maps.Clone(e.Metadata)
			delete(md, attrs.ZoneKey) // zone is the one place it is kept
			if len(md) == 0 {
				md = nil
			}
		}
		sorted := slices.Sorted(slices.Values(addrs))
		out = append(out, endpoint{addrs: addrs, key: strings.Join(sorted, ","), weight: w, md: md, zone: zone})
	}
	slices.SortFunc(out, func(a, b endpoint) int { return cmp.Compare(a.key, b.key) })
	return out, problems
}

// toState converts canonical endpoints into channel state: one
// resolver.Endpoint each, weight (Fulcrum's and grpc-go's attribute),
// metadata and zone as attrs attributes. Addresses
// is filled too for balancers that still read it (it is deprecated in
// grpc-go, and grpc-go's own dns resolver still sets both).
func toState(eps []endpoint) resolver.State {
	var s resolver.State
	for _, e := range eps {
		rep := resolver.Endpoint{Addresses: make([]resolver.Address, len(e.addrs))}
		for i, a := range e.addrs {
			rep.Addresses[i] = resolver.Address{Addr: a}
		}
		s.Addresses = append(s.Addresses, rep.Addresses...)
		// Both attributes: grpc-go's own weight-aware policies read the second.
		rep = attrs.SetBoth(rep, e.weight)
		if e.md != nil {
			rep = attrs.SetMetadata(rep, e.md)
		}
		if e.zone != "" {
			rep = attrs.SetZone(rep, e.zone)
		}
		s.Endpoints = append(s.Endpoints, rep)
	}
	return s
}
