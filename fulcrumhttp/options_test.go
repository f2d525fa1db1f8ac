package fulcrumhttp_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"testing"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

// TestTransport_TemplateDialTLSKept (issue 18): the DialTLSContext of
// WithEndpointTransport's template is used, called with the endpoint's
// address.
func TestTransport_TemplateDialTLSKept(t *testing.T) {
	b, pool := newTLSBackend(t, "tls")
	var calls atomic.Int64
	var gotAddr atomic.Value
	tmpl := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		calls.Add(1)
		gotAddr.Store(addr)
		d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "example.com", NextProtos: []string{"http/1.1"}}}
		return d.DialContext(ctx, network, addr)
	}}
	tr := newTransport(t, map[string]string{"example.com": "fulcrum://static/" + b.addr}, `{}`, fulcrumhttp.WithEndpointTransport(tmpl))
	if code, _ := mustGet(t, &http.Client{Transport: tr}, "https://example.com/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if calls.Load() == 0 || gotAddr.Load() != b.addr {
		t.Errorf("template DialTLSContext called %d times with %v, want it used with %s", calls.Load(), gotAddr.Load(), b.addr)
	}
}

// TestTransport_HTTP2Off (issue 18): "http2":false keeps HTTPS requests on
// HTTP/1.1 although the server offers HTTP/2; h2c with it is an error.
func TestTransport_HTTP2Off(t *testing.T) {
	b, pool := newTLSBackend(t, "tls")
	for _, tc := range []struct {
		cfg   string
		proto int
	}{{`{}`, 2}, {`{"http2":false}`, 1}} {
		tr := newTransport(t, map[string]string{"example.com": "fulcrum://static/" + b.addr}, tc.cfg, fulcrumhttp.WithTLSConfig(&tls.Config{RootCAs: pool}))
		resp, err := (&http.Client{Transport: tr}).Get("https://example.com/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != tc.proto {
			t.Errorf("%s: HTTP/%d, want HTTP/%d", tc.cfg, resp.ProtoMajor, tc.proto)
		}
	}
	if _, err := fulcrumhttp.NewTransport(map[string]string{"svc": "fulcrum://static/" + b.addr}, fulcrumhttp.WithConfig(`{"h2c":true,"http2":false}`)); err == nil {
		t.Error(`{"h2c":true,"http2":false} accepted, want an error`)
	}
}

// TestTransport_DefaultPortMatchesKey (issue 18): a key also matches the
// same host with the scheme's default port written out, and a key with
// the default port matches the host without it.
func TestTransport_DefaultPortMatchesKey(t *testing.T) {
	b := newBackend(t, "b", "127.0.0.1:0")
	tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + b.addr, "other:80": "fulcrum://static/" + b.addr}, `{}`,
		fulcrumhttp.WithUnknownHostError())
	c := &http.Client{Transport: tr}
	for _, u := range []string{"http://svc/", "http://svc:80/", "http://SVC:80/", "http://other/", "http://other:80/"} {
		if code, _, err := do(t, c, http.MethodGet, u, nil, ""); err != nil || code != 200 {
			t.Errorf("GET %s: %d, %v; want it balanced", u, code, err)
		}
	}
	for _, u := range []string{"http://svc:8080/", "https://svc:80/", "http://other:8080/"} {
		if _, _, err := do(t, c, http.MethodGet, u, nil, ""); err == nil {
			t.Errorf("GET %s: served, want an unknown host", u)
		}
	}
}

// TestTransport_CloseIdleConnectionsOwnPoolsOnly (issue 18): closing this
// Transport's idle connections leaves http.DefaultTransport's alone.
func TestTransport_CloseIdleConnectionsOwnPoolsOnly(t *testing.T) {
	b := newBackend(t, "b", "127.0.0.1:0")
	def := http.DefaultTransport.(*http.Transport)
	t.Cleanup(def.CloseIdleConnections)
	get := func() (reused bool) {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, "http://"+b.addr+"/", nil)
		resp, err := def.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return reused
	}
	get()
	tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + b.addr}, `{}`)
	mustGet(t, &http.Client{Transport: tr}, "http://svc/")
	tr.CloseIdleConnections()
	if !get() {
		t.Error("http.DefaultTransport's idle connection was closed by fulcrumhttp's CloseIdleConnections")
	}
}

// TestTransport_RetryStatuses429 (issue 18): 429 may be listed in
// retry.statuses; the request is then retried on another endpoint.
func TestTransport_RetryStatuses429(t *testing.T) {
	bs := newBackends(t, 2)
	bs[0].status.Store(http.StatusTooManyRequests)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{"retry":{"statuses":[429,503],"minRetriesPerSecond":1000}}`)
	c := &http.Client{Transport: tr}
	for i := 0; bs[0].hits.Load() < 3; i++ {
		if i == 200 {
			t.Fatal("b0 never picked")
		}
		if code, id := mustGet(t, c, "http://svc/"); code != 200 || id != "b1" {
			t.Fatalf("GET %d: %d from %s, want 200 from b1", i, code, id)
		}
	}
}

// TestTransport_EndpointWrapper (issue 18): every attempt goes through the
// wrapper (retries included), given the endpoint's address; probes do not.
func TestTransport_EndpointWrapper(t *testing.T) {
	bs := newBackends(t, 2)
	bs[0].status.Store(http.StatusServiceUnavailable)
	var attempts atomic.Int64
	wrap := func(addr string, rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			attempts.Add(1)
			req.Header.Set("X-Wrapped", addr)
			return rt.RoundTrip(req)
		})
	}
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"enabled":false},"retry":{"minRetriesPerSecond":1000},`+fastProbe+`}`, fulcrumhttp.WithEndpointWrapper(wrap))
	c := &http.Client{Transport: tr}
	waitFor(t, "both endpoints proven", func() bool {
		st := tr.Stats().Endpoints
		return len(st) == 2 && st[0].State == "usable" && st[1].State == "usable"
	})
	for range 30 {
		if code, _ := mustGet(t, c, "http://svc/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if hits := bs[0].hits.Load() + bs[1].hits.Load(); attempts.Load() != hits || bs[0].hits.Load() == 0 {
		t.Errorf("wrapper saw %d attempts, servers %d requests (b0 %d); want every attempt wrapped", attempts.Load(), hits, bs[0].hits.Load())
	}
	if _, err := fulcrumhttp.NewTransport(map[string]string{"svc": staticTarget(bs)}, fulcrumhttp.WithEndpointWrapper(nil)); err == nil {
		t.Error("WithEndpointWrapper(nil) accepted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
