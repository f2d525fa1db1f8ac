package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

// value is the JSON form of an instance.
type value struct {
	Addresses []string          `json:"addresses"`
	Weight    uint32            `json:"weight,omitempty"`
	Zone      string            `json:"zone,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// parseValue decodes the value of an instance key: a JSON object, or a bare
// "host:port".
func parseValue(b []byte) (resolver.Endpoint, error) {
	s := strings.TrimSpace(string(b))
	if !strings.HasPrefix(s, "{") {
		if _, _, err := net.SplitHostPort(s); err != nil || strings.ContainsAny(s, " \t\r\n\"") {
			return resolver.Endpoint{}, fmt.Errorf("etcd: value: %q, must be a JSON object or host:port", truncate(s))
		}
		return resolver.Endpoint{Addresses: []string{s}}, nil
	}
	var v value
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return resolver.Endpoint{}, fmt.Errorf("etcd: value: %q, must be a valid instance JSON object: %v", truncate(s), err)
	}
	return v.endpoint()
}

func (v value) endpoint() (resolver.Endpoint, error) {
	if len(v.Addresses) == 0 {
		return resolver.Endpoint{}, errors.New("etcd: addresses: [], must be non-empty")
	}
	if slices.Contains(v.Addresses, "") {
		return resolver.Endpoint{}, fmt.Errorf("etcd: addresses: %q, must not contain an empty address", v.Addresses)
	}
	ep := resolver.Endpoint{Addresses: v.Addresses, Weight: v.Weight, Metadata: v.Metadata, Zone: v.Zone}
	if _, err := ep.ZoneOf(); err != nil {
		return resolver.Endpoint{}, fmt.Errorf("etcd: %v", err)
	}
	return ep, nil
}

// truncate keeps log lines short when a large value is malformed.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
