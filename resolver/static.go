package resolver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

// staticSource serves a fixed list written in the target:
//
//	fulcrum://static/<entry>[,<entry>...]
//	entry = host ":" port [ "=" weight ]
//
// e.g. fulcrum://static/10.0.0.1:50051=3,10.0.0.2:50051,[::1]:50051=2.
// A static list is written by hand, so anything wrong in it fails Build.
type staticSource struct{}

func (staticSource) Watch(_ context.Context, name string, report func(Update)) (func(), func(), error) {
	path, q, err := splitName(name)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeys("static", q); err != nil {
		return nil, nil, err
	}
	eps, err := parseStatic(path)
	if err != nil {
		return nil, nil, err
	}
	report(Update{Endpoints: eps, Authoritative: true})
	return func() {}, func() {}, nil
}

// parseStatic parses the name of a static target: one endpoint (with one
// address) per comma-separated entry.
func parseStatic(s string) ([]Endpoint, error) {
	if s == "" {
		return nil, fmt.Errorf("static list: empty, must be host:port[=weight][,...]")
	}
	entries := strings.Split(s, ",")
	eps := make([]Endpoint, 0, len(entries))
	seen := make(map[string]int, len(entries))
	for i, entry := range entries {
		addr, ws, hasWeight := strings.Cut(entry, "=")
		if err := checkHostPort(addr); err != nil {
			return nil, fmt.Errorf("static entry %d %q: address %v", i+1, entry, err)
		}
		if j, dup := seen[addr]; dup {
			return nil, fmt.Errorf("static entry %d %q: address %s, must not repeat entry %d", i+1, entry, addr, j)
		}
		seen[addr] = i + 1
		ep := Endpoint{Addresses: []string{addr}}
		if hasWeight {
			w, err := strconv.ParseUint(ws, 10, 32)
			if err != nil || w < 1 || w > uint64(attrs.MaxWeight) {
				return nil, fmt.Errorf("static entry %d %q: weight: %q, must be an integer in [1, %d]", i+1, entry, ws, attrs.MaxWeight)
			}
			ep.Weight = uint32(w)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}
