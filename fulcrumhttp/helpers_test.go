package fulcrumhttp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

const defaultTestTimeout = 5 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a real net/http server on 127.0.0.1 whose behaviour can be
// changed while it runs. It counts application requests (not probes).
type backend struct {
	id   string
	addr string
	srv  *httptest.Server

	hits       atomic.Int64
	status     atomic.Int32 // non-zero: answer requests with it
	retryAfter atomic.Value // string sent with status, if any
	once503    atomic.Int32 // answer this many requests with 503 + Retry-After: 1
	delay      atomic.Int64 // nanoseconds added to every request
	hung       atomic.Bool  // requests and probes block until release
	health     atomic.Int32 // status of /healthz; 0 = 200
	probes     atomic.Int64

	mu       sync.Mutex
	lastHost string
	lastTLS  string // ServerName of the last TLS request
	lastProt int    // ProtoMajor of the last request
	release  chan struct{}
	stopOnce sync.Once
	reqIDs   map[string]int // X-Req-Id -> times seen
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		b.probes.Add(1)
		if b.hung.Load() {
			b.wait(r)
			return
		}
		if s := b.health.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		io.WriteString(w, "ok")
		return
	}
	b.hits.Add(1)
	b.mu.Lock()
	b.lastHost, b.lastProt = r.Host, r.ProtoMajor
	if id := r.Header.Get("X-Req-Id"); id != "" {
		if b.reqIDs == nil {
			b.reqIDs = map[string]int{}
		}
		b.reqIDs[id]++
	}
	if r.TLS != nil {
		b.lastTLS = r.TLS.ServerName
	}
	b.mu.Unlock()
	io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Backend", b.id)
	if b.hung.Load() {
		b.wait(r)
		return
	}
	if d := b.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if b.once503.Load() > 0 && b.once503.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if s := b.status.Load(); s != 0 {
		w.WriteHeader(int(s))
		return
	}
	io.WriteString(w, b.id)
}

func (b *backend) wait(r *http.Request) {
	select {
	case <-b.release:
	case <-r.Context().Done():
	}
}

// newBackend starts a backend on addr ("127.0.0.1:0" for any port).
func newBackend(t *testing.T, id, addr string) *backend {
	t.Helper()
	b := &backend{id: id, release: make(chan struct{})}
	b.start(t, addr)
	t.Cleanup(b.stop)
	return b
}

func (b *backend) start(t *testing.T, addr string) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	b.srv = httptest.NewUnstartedServer(b)
	b.srv.Listener.Close()
	b.srv.Listener = lis
	b.srv.Start()
	b.addr = lis.Addr().String()
}

// stop releases hung handlers and closes the server and its connections.
func (b *backend) stop() {
	b.stopOnce.Do(func() { close(b.release) })
	b.srv.CloseClientConnections()
	b.srv.Close()
}

func newBackends(t *testing.T, n int) []*backend {
	bs := make([]*backend, n)
	for i := range bs {
		bs[i] = newBackend(t, fmt.Sprintf("b%d", i), "127.0.0.1:0")
	}
	return bs
}

// staticTarget returns fulcrum://static/addr[=weight],... .
func staticTarget(bs []*backend, weights ...int) string {
	var parts []string
	for i, b := range bs {
		p := b.addr
		if i < len(weights) {
			p += "=" + strconv.Itoa(weights[i])
		}
		parts = append(parts, p)
	}
	return "fulcrum://static/" + strings.Join(parts, ",")
}

func newTransport(t *testing.T, hosts map[string]string, cfg string, opts ...fulcrumhttp.Option) *fulcrumhttp.Transport {
	t.Helper()
	tr, err := fulcrumhttp.NewTransport(hosts, append([]fulcrumhttp.Option{fulcrumhttp.WithConfig(cfg)}, opts...)...)
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// get sends one request and reads the whole body; it returns the status and
// the X-Backend header.
func do(t *testing.T, c *http.Client, method, url string, hdr http.Header, body string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), nil
}

func mustGet(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	code, id, err := do(t, c, http.MethodGet, url, nil, "")
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, id
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endpointStats returns the stats of the endpoint at addr.
func endpointStats(tr *fulcrumhttp.Transport, addr string) (fulcrumhttp.EndpointStats, bool) {
	for _, e := range tr.Stats().Endpoints {
		if e.Addr == addr {
			return e, true
		}
	}
	return fulcrumhttp.EndpointStats{}, false
}

// within reports whether got is within tol of want.
func within(got, want, tol float64) bool { return got >= want-tol && got <= want+tol }
