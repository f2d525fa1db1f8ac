package fulcrumhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

// TestTransport_RetryAfterNeverEmptiesHost (issue 18, defect 1): with one
// endpoint (a ClusterIP, a VIP), a 429 with Retry-After is the caller's
// rate limit and holds nothing, and a 503 with Retry-After cannot take the
// only endpoint out of rotation: every later request reaches the server.
func TestTransport_RetryAfterNeverEmptiesHost(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
			b := newProtoBackend(t, "only", h2, func(b *backend) {
				b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if b.hits.Add(1) == 1 {
						w.Header().Set("Retry-After", "5")
						w.WriteHeader(status)
						return
					}
					io.WriteString(w, "ok")
				})
			})
			tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + b.addr}, h2cConfig(`{"breaker":{"enabled":false}}`, h2))
			c := &http.Client{Transport: tr}
			if code, _ := mustGet(t, c, "http://svc/"); code != status {
				t.Fatalf("first request: %d, want %d", code, status)
			}
			for i := range 20 {
				code, _, err := do(t, c, http.MethodGet, "http://svc/", nil, "")
				if err != nil || code != http.StatusOK {
					t.Fatalf("%d: request %d after the Retry-After: %d, %v; want it served", status, i, code, err)
				}
			}
			if got := b.hits.Load(); got != 21 {
				t.Errorf("%d: server saw %d requests, want all 21", status, got)
			}
		}
	})
}

// TestTransport_RetryAfter429HoldsNothingByDefault: a 429 with
// Retry-After on one of two endpoints does not move traffic (it is one
// caller's limit), unless breaker.retryAfterStatuses lists 429.
func TestTransport_RetryAfter429HoldsNothingByDefault(t *testing.T) {
	for _, tc := range []struct {
		cfg      string
		wantHeld bool
	}{{`{"breaker":{"enabled":false},"latencyAware":false}`, false}, {`{"breaker":{"enabled":false,"retryAfterStatuses":[429,503]},"latencyAware":false}`, true}} {
		bs := []*backend{newProtoBackend(t, "b0", false, func(b *backend) {
			b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b.hits.Add(1)
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusTooManyRequests)
			})
		}), newBackend(t, "b1", "127.0.0.1:0")}
		tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, tc.cfg)
		c := &http.Client{Transport: tr}
		waitFor(t, "a 429", func() bool { mustGet(t, c, "http://svc/"); return bs[0].hits.Load() > 0 })
		before := bs[0].hits.Load()
		for range 40 {
			mustGet(t, c, "http://svc/")
		}
		if held := bs[0].hits.Load() == before; held != tc.wantHeld {
			t.Errorf("%s: b0 got %d requests after its 429, held = %v, want %v", tc.cfg, bs[0].hits.Load()-before, held, tc.wantHeld)
		}
	}
}

// TestTransport_NeverWrittenResentAnyMethod (issue 18, defect 2): with one
// endpoint refusing connections, POSTs without an Idempotency-Key are
// re-sent to the other endpoint (nothing was written, so nothing can have
// been processed), with the breaker off and with the defaults; each POST
// is received exactly once.
func TestTransport_NeverWrittenResentAnyMethod(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		for _, cfg := range []string{`{"breaker":{"enabled":false},"retry":{"minRetriesPerSecond":1000}}`, `{}`} {
			b := newProtoBackend(t, "live", h2)
			target := fmt.Sprintf("fulcrum://static/%s,%s", refusedAddr(t), b.addr)
			tr := newTransport(t, map[string]string{"svc": target}, h2cConfig(cfg, h2))
			c := &http.Client{Transport: tr}
			const n = 40
			for i := range n {
				code, id, err := do(t, c, http.MethodPost, "http://svc/", http.Header{"X-Req-Id": {strconv.Itoa(i)}}, "payload")
				if err != nil || code != http.StatusOK || id != "live" {
					t.Fatalf("%s: POST %d: %d from %q, %v; want 200 from the live server", cfg, i, code, id, err)
				}
			}
			b.mu.Lock()
			for id, k := range b.reqIDs {
				if k != 1 {
					t.Errorf("%s: POST %s received %d times", cfg, id, k)
				}
			}
			if len(b.reqIDs) != n {
				t.Errorf("%s: %d distinct POSTs received, want %d", cfg, len(b.reqIDs), n)
			}
			b.mu.Unlock()
		}
	})
}

// TestTransport_DisableRetries: a request whose context says so is sent
// once, even when it was never written.
func TestTransport_DisableRetries(t *testing.T) {
	b := newBackend(t, "live", "127.0.0.1:0")
	tr := newTransport(t, map[string]string{"svc": fmt.Sprintf("fulcrum://static/%s,%s", refusedAddr(t), b.addr)},
		`{"breaker":{"enabled":false},"latencyAware":false}`)
	c := &http.Client{Transport: tr}
	var failed int
	for range 40 {
		req, _ := http.NewRequestWithContext(fulcrumhttp.DisableRetries(context.Background()), http.MethodGet, "http://svc/", nil)
		resp, err := c.Do(req)
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
	}
	if st := tr.Stats(); st.Retries != 0 || failed == 0 || failed+int(b.hits.Load()) != 40 {
		t.Errorf("retries %d, failed %d, served %d; want no retry and the refused attempts failed", st.Retries, failed, b.hits.Load())
	}
}

// TestTransport_NetErrorIdiom (issue 18, defect 3): a request whose
// deadline passes gives net/http's answers through http.Client:
// err.(net.Error).Timeout(), errors.Is(context.DeadlineExceeded), and a
// *fulcrumhttp.Error naming the host, the endpoint and the attempts.
func TestTransport_NetErrorIdiom(t *testing.T) {
	b := newBackend(t, "hung", "127.0.0.1:0")
	b.hung.Store(true)
	tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + b.addr}, `{}`)
	for _, rt := range []http.RoundTripper{http.DefaultTransport, tr} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		url := "http://svc/"
		if rt == http.DefaultTransport {
			url = "http://" + b.addr + "/"
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		_, err := (&http.Client{Transport: rt}).Do(req)
		cancel()
		var ne net.Error
		if err == nil || !err.(net.Error).Timeout() || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%T: err = %v; want a net.Error with Timeout() and errors.Is DeadlineExceeded", rt, err)
		}
		if rt == tr {
			var fe *fulcrumhttp.Error
			if !errors.As(err, &fe) || fe.Host != "svc" || fe.Endpoint != b.addr || fe.Attempts != 1 || !fe.Timeout() || !fe.Temporary() {
				t.Errorf("err = %#v, want *fulcrumhttp.Error{svc, %s, 1 attempt} with Timeout and Temporary", fe, b.addr)
			}
		}
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()

	// A refused connection is no timeout, and its *net.OpError is found.
	refused := refusedAddr(t)
	tr2 := newTransport(t, map[string]string{"svc": "fulcrum://static/" + refused}, `{}`)
	_, err := (&http.Client{Transport: tr2}).Get("http://svc/")
	var fe *fulcrumhttp.Error
	var op *net.OpError
	if err == nil || err.(net.Error).Timeout() || !errors.As(err, &fe) || fe.Endpoint != refused || !errors.As(err, &op) {
		t.Errorf("refused: err = %v; want a non-timeout *fulcrumhttp.Error naming %s and wrapping a *net.OpError", err, refused)
	}
}
