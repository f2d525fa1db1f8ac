package passthrough

import (
	"net/url"
	"testing"

	"google.golang.org/grpc/resolver"
)

func target(t *testing.T, s string) resolver.Target {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return resolver.Target{URL: *u}
}

func TestWarn(t *testing.T) {
	for s, want := range map[string]bool{
		"passthrough:///10.0.0.1:1":              true,
		"dns:///localhost:1":                     false,
		"fulcrum://static/10.0.0.1:1,10.0.0.2:1": false,
	} {
		if got := Warn(target(t, s)); got != want {
			t.Errorf("Warn(%q) = %v, want %v", s, got, want)
		}
	}
}
