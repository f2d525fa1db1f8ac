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
//	entry = host ":" port [ "=" weight ] [ ";zone=" zone ]
//
// e.g. fulcrum://static/10.0.0.1:50051=3;zone=a,10.0.0.2:50051;zone=b,[::1]:50051=2.
// A static list is written by hand, so anything wrong in it fails Build.
//
// The zone follows ";", a path-segment parameter in RFC 3986's terms
// (section 3.3: ";" is a sub-delimiter "often used to delimit parameters"):
// grpc-go hands the target to url.Parse whole, which keeps ";" in the path
// undecoded and unsplit, and ";" cannot occur in a host, a port, a bracketed
// IPv6 literal or a weight, so an entry splits unambiguously.
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

// staticParamZone is the one parameter a static entry takes after ";".
const staticParamZone = "zone"

// parseStatic parses the name of a static target: one endpoint (with one
// address) per comma-separated entry.
func parseStatic(s string) ([]Endpoint, error) {
	if s == "" {
		return nil, fmt.Errorf("static list: empty, must be host:port[=weight][;zone=zone][,...]")
	}
	entries := strings.Split(s, ",")
	eps := make([]Endpoint, 0, len(entries))
	seen := make(map[string]int, len(entries))
	for i, entry := range entries {
		head, params, hasParams := strings.Cut(entry, ";")
		addr, ws, hasWeight := strings.Cut(head, "=")
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
		if hasParams {
			zone, err := parseStaticParams(params)
			if err != nil {
				return nil, fmt.Errorf("static entry %d %q: %v", i+1, entry, err)
			}
			ep.Zone = zone
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// parseStaticParams parses what follows the first ";" of an entry: ";"-
// separated key=value parameters, of which zone is the only one.
func parseStaticParams(params string) (zone string, err error) {
	given := false
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		switch {
		case k != staticParamZone || !ok:
			return "", fmt.Errorf("parameter: %q, must be %s=<zone>", p, staticParamZone)
		case given:
			return "", fmt.Errorf("zone: given twice, must be given at most once")
		case !validStaticZone(v):
			return "", fmt.Errorf("zone: %q, must be non-empty letters, digits, '-', '_' and '.'", v)
		}
		zone, given = v, true
	}
	return zone, nil
}

// validStaticZone accepts the characters of cloud zone names (us-east-1a,
// europe-west1-b) and Kubernetes label values (topology.kubernetes.io/zone),
// and none of the separators of the static grammar.
func validStaticZone(z string) bool {
	if z == "" {
		return false
	}
	for _, r := range z {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
