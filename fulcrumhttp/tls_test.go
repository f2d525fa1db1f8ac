package fulcrumhttp_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

// newTLSBackend starts an HTTPS backend with HTTP/2 enabled; its test
// certificate is valid for example.com and 127.0.0.1.
func newTLSBackend(t *testing.T, id string) (*backend, *x509.CertPool) {
	t.Helper()
	b := &backend{id: id, release: make(chan struct{})}
	b.srv = httptest.NewUnstartedServer(b)
	b.srv.EnableHTTP2 = true
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the name-mismatch test's handshake error is expected
	b.srv.StartTLS()
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.stop)
	pool := x509.NewCertPool()
	pool.AddCert(b.srv.Certificate())
	return b, pool
}

// TestTransport_TLSVerifiesLogicalName: the TCP connection goes to the
// instance's address, the certificate is verified against the logical
// host (example.com, which the test certificate names), the server sees
// that name in SNI and in Host, and HTTP/2 is negotiated. A logical name
// the certificate does not list fails verification.
func TestTransport_TLSVerifiesLogicalName(t *testing.T) {
	b, pool := newTLSBackend(t, "tls")
	tr := newTransport(t, map[string]string{
		"example.com":      "fulcrum://static/" + b.addr,
		"wrong.test":       "fulcrum://static/" + b.addr,
		"example.com:8443": "fulcrum://static/" + b.addr,
	}, `{"retry":{"maxAttempts":1}}`, fulcrumhttp.WithTLSConfig(&tls.Config{RootCAs: pool}))
	c := &http.Client{Transport: tr}

	resp, err := c.Get("https://example.com/x")
	if err != nil {
		t.Fatalf("GET https://example.com/x: %v", err)
	}
	resp.Body.Close()
	b.mu.Lock()
	sni, host, proto := b.lastTLS, b.lastHost, b.lastProt
	b.mu.Unlock()
	if resp.StatusCode != 200 || sni != "example.com" || host != "example.com" || proto != 2 || resp.ProtoMajor != 2 {
		t.Errorf("status %d, server saw SNI %q Host %q HTTP/%d (client HTTP/%d); want 200, example.com, example.com, HTTP/2",
			resp.StatusCode, sni, host, proto, resp.ProtoMajor)
	}
	if code, _ := mustGet(t, c, "https://example.com:8443/x"); code != 200 {
		t.Errorf("GET https://example.com:8443/x: %d", code)
	}

	_, _, err = do(t, c, http.MethodGet, "https://wrong.test/x", nil, "")
	if err == nil || !strings.Contains(err.Error(), "certificate is valid for") || !strings.Contains(err.Error(), "not wrong.test") {
		t.Errorf("GET https://wrong.test/x: err = %v, want a certificate name mismatch", err)
	}
	if b.hits.Load() != 2 {
		t.Errorf("server got %d requests, want 2 (the mismatched name must not get through)", b.hits.Load())
	}
}

// TestTransport_TLSProbes: with WithTLSConfig the probes use https over
// the same verified connections.
func TestTransport_TLSProbes(t *testing.T) {
	b, pool := newTLSBackend(t, "tls")
	tr := newTransport(t, map[string]string{"example.com": "fulcrum://static/" + b.addr},
		`{`+fastProbe+`}`, fulcrumhttp.WithTLSConfig(&tls.Config{RootCAs: pool}))
	waitFor(t, "https probes", func() bool { return b.probes.Load() >= 2 })
	if s, _ := endpointStats(tr, b.addr); !s.Healthy {
		t.Errorf("endpoint unhealthy over https probes: %+v", s)
	}
}

// TestTransport_H2C: with h2c on, http:// requests use HTTP/2 with prior
// knowledge; without it, HTTP/1.1.
func TestTransport_H2C(t *testing.T) {
	b := &backend{id: "h2c", release: make(chan struct{})}
	b.srv = httptest.NewUnstartedServer(b)
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	b.srv.Config.Protocols = p
	b.srv.Start()
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.stop)

	for _, tc := range []struct {
		cfg   string
		proto int
	}{{`{"h2c":true}`, 2}, {`{}`, 1}} {
		tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + b.addr}, tc.cfg)
		resp, err := (&http.Client{Transport: tr}).Get("http://svc/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		b.mu.Lock()
		got := b.lastProt
		b.mu.Unlock()
		if got != tc.proto || resp.ProtoMajor != tc.proto {
			t.Errorf("%s: server saw HTTP/%d, client HTTP/%d; want HTTP/%d", tc.cfg, got, resp.ProtoMajor, tc.proto)
		}
	}
}
