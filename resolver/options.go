package resolver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// parseQuery parses a target's raw query. A key given twice is an error: the
// resolver will not guess which one was meant.
func parseQuery(raw string) (map[string]string, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("query: %q: %v", raw, err)
	}
	q := make(map[string]string, len(vals))
	for k, v := range vals {
		if len(v) != 1 {
			return nil, fmt.Errorf("query parameter %s: given %d times, must be given at most once", k, len(v))
		}
		q[k] = v[0]
	}
	return q, nil
}

// encodeQuery is the inverse of parseQuery.
func encodeQuery(q map[string]string) string {
	vals := make(url.Values, len(q))
	for k, v := range q {
		vals.Set(k, v)
	}
	return vals.Encode()
}

// splitName splits the name a Source receives into its path and the query
// parameters the common layer passed on (see Source).
func splitName(name string) (string, map[string]string, error) {
	path, raw, _ := strings.Cut(name, "?")
	q, err := parseQuery(raw)
	return path, q, err
}

// checkKeys rejects query parameters that source does not support, naming the
// ones it does.
func checkKeys(source string, q map[string]string, allowed ...string) error {
	var unknown []string
	for k := range q {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	supported := append(slices.Clone(commonKeys), allowed...)
	return fmt.Errorf("query parameter %s: not supported by source %s, must be one of: %s", unknown[0], source, strings.Join(supported, ", "))
}

// parseDuration parses the value of query parameter key as a Go duration in
// [lo, hi].
func parseDuration(key, v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("%s: %q, must be a duration in [%v, %v]", key, v, lo, hi)
	}
	return d, nil
}

// parseBool parses the value of a boolean query parameter. An empty value
// ("?srv") means true.
func parseBool(key, v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q, must be true or false", key, v)
	}
	return b, nil
}

// checkHostPort validates a dialable "host:port": IPv6 literals in brackets,
// a non-empty host without separators the target grammars use, and a numeric
// port in [1, 65535].
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q: %s, must be host:port (IPv6 as [addr]:port)", addr, ae.Err)
		}
		return fmt.Errorf("%q: must be host:port (IPv6 as [addr]:port)", addr)
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n,=/?#") {
		return fmt.Errorf("%q: host %q, must be a non-empty host name or IP address", addr, host)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %v", addr, err)
	}
	return nil
}

func parsePort(port string) (uint16, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q, must be a number in [1, 65535]", port)
	}
	return uint16(p), nil
}
