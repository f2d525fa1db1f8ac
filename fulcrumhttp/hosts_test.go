package fulcrumhttp

import (
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	routes, err := parseRoutes(map[string]string{
		"User-Svc":      "fulcrum://static/127.0.0.1:1",
		"user-svc:8443": "fulcrum://dns/user.internal:8443",
		"[::1]:80":      "FULCRUM://static/[::1]:80",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range routes {
		got[r.key] = r.serverName
	}
	want := map[string]string{"user-svc": "user-svc", "user-svc:8443": "user-svc", "[::1]:80": "::1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("route %q: serverName %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestParseRoutes_Errors(t *testing.T) {
	for _, tc := range []struct {
		m    map[string]string
		want string
	}{
		{nil, "fulcrumhttp: hosts: empty map"},
		{map[string]string{"": "fulcrum://static/127.0.0.1:1"}, `fulcrumhttp: host "": must be a non-empty URL host`},
		{map[string]string{"http://svc": "fulcrum://static/127.0.0.1:1"}, `fulcrumhttp: host "http://svc": must be a URL host such as`},
		{map[string]string{"svc/path": "fulcrum://static/127.0.0.1:1"}, `without scheme, path or user info`},
		{map[string]string{"svc:0": "fulcrum://static/127.0.0.1:1"}, `fulcrumhttp: host "svc:0": port: "0", must be in [1, 65535]`},
		{map[string]string{"svc:http": "fulcrum://static/127.0.0.1:1"}, `port: "http", must be in [1, 65535]`},
		{map[string]string{"svc": "dns:///svc:80"}, `fulcrumhttp: host "svc": target "dns:///svc:80": scheme "dns", must be "fulcrum"`},
		{map[string]string{"svc": "127.0.0.1:80"}, `target "127.0.0.1:80": parse "127.0.0.1:80": first path segment in URL cannot contain colon, must be fulcrum://<source>/<name>`},
		{map[string]string{"svc": "fulcrum://static/1", "SVC": "fulcrum://static/2"}, `same host as`},
	} {
		_, err := parseRoutes(tc.m)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseRoutes(%v) error = %v, want it to contain %q", tc.m, err, tc.want)
		}
	}
}
