package fulcrumhttp

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

// TestHeldEmptyAnswer_HTTP is the gRPC test of a held empty answer through
// the RoundTripper: a state the resolver marks held (attrs.EmptyHeld)
// whose endpoints all fail their probes fails requests at once with the
// registry's answer; unheld, panic mode sends them to the endpoints.
func TestHeldEmptyAnswer_HTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr, err := NewTransport(map[string]string{"svc": "fulcrum://static/" + addr},
		WithConfig(`{"latencyAware":false,"healthProbe":{"path":"/healthz","interval":"20ms","timeout":"15ms","warmup":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func() error {
		resp, err := c.Get("http://svc/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	g := tr.groups["svc"]
	poll := func(what string, ok func(error) bool) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if err = get(); ok(err) {
				return
			}
		}
		t.Fatalf("timed out waiting for %s; last request: %v", what, err)
	}
	poll("the endpoint unhealthy and served by panic mode", func(err error) bool {
		res := g.set.Results()
		return err == nil && len(res) == 1 && res[addr].State.String() == "unhealthy"
	})
	state := resolver.State{Endpoints: []resolver.Endpoint{{Addresses: []resolver.Address{{Addr: addr}}}}}
	res := &resolution{onUpdate: g.onUpdate, onError: func(error) {}}
	res.UpdateState(attrs.SetEmptyHeld(state, true))
	poll("requests failing with the registry's answer", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "the registry reports no endpoints")
	})
	res.UpdateState(state)
	poll("panic mode again once the hold ends", func(err error) bool { return err == nil })
}
