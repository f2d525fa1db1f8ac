package fulcrumhttp

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
)

// route is one entry of the NewTransport map.
type route struct {
	key        string   // lower-cased URL host, as requests write it
	serverName string   // key without its port: the TLS name and logical host
	target     *url.URL // the fulcrum:// target
}

// parseRoutes validates the host -> target map. Keys are URL hosts
// ("user-svc", "user-svc:8080", "[::1]:80"); values are fulcrum:// targets.
func parseRoutes(m map[string]string) ([]route, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("fulcrumhttp: hosts: empty map, must map at least one URL host to a %s:// target", fresolver.Scheme)
	}
	routes := make([]route, 0, len(m))
	seen := make(map[string]string, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		r, err := parseRoute(k, m[k])
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[r.key]; dup {
			return nil, fmt.Errorf("fulcrumhttp: host %q: same host as %q, must appear once (hosts are case-insensitive)", k, prev)
		}
		seen[r.key] = k
		routes = append(routes, r)
	}
	return routes, nil
}

func parseRoute(key, target string) (route, error) {
	host, err := validHost(key)
	if err != nil {
		return route{}, fmt.Errorf("fulcrumhttp: host %q: %v", key, err)
	}
	u, err := url.Parse(target)
	switch {
	case err != nil:
		return route{}, fmt.Errorf("fulcrumhttp: host %q: target %q: %v, must be %s://<source>/<name>", key, target, err, fresolver.Scheme)
	case !strings.EqualFold(u.Scheme, fresolver.Scheme):
		return route{}, fmt.Errorf("fulcrumhttp: host %q: target %q: scheme %q, must be %q (%s://<source>/<name>)", key, target, u.Scheme, fresolver.Scheme, fresolver.Scheme)
	}
	return route{key: strings.ToLower(key), serverName: host, target: u}, nil
}

// validHost checks that key is a URL host: a name or IP, optionally with a
// port, and nothing else (no scheme, path, user info or spaces).
func validHost(key string) (host string, err error) {
	if key == "" {
		return "", fmt.Errorf("must be a non-empty URL host such as \"user-svc\" or \"user-svc:8080\"")
	}
	if strings.ContainsAny(key, "/?#@ \t\r\n") {
		return "", fmt.Errorf("must be a URL host such as \"user-svc\" or \"user-svc:8080\", without scheme, path or user info")
	}
	host, port := key, ""
	if h, p, err := net.SplitHostPort(key); err == nil {
		host, port = h, p
	} else if strings.Count(key, ":") > 0 && !strings.HasPrefix(key, "[") {
		return "", fmt.Errorf("must be host or host:port (IPv6 in brackets)")
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port: %q, must be in [1, 65535]", port)
		}
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return "", fmt.Errorf("must have a non-empty host name")
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("host: %q, must be a name or an IP address", host)
	}
	return strings.ToLower(host), nil
}
