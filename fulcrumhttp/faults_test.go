package fulcrumhttp_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTransport_FailingEndpointEjected: one of three servers answers 503.
// Every GET still succeeds (retried on another endpoint), the breaker opens
// after 3 consecutive failures and the endpoint then gets no traffic.
func TestTransport_FailingEndpointEjected(t *testing.T) {
	bs := newBackends(t, 3)
	bs[0].status.Store(http.StatusServiceUnavailable)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"consecutiveFailures":3,"openDuration":"1m","maxOpenDuration":"1m"},"retry":{"minRetriesPerSecond":100}}`)
	c := &http.Client{Transport: tr}
	for i := range 100 {
		if code, id := mustGet(t, c, "http://svc/"); code != http.StatusOK || id == "b0" {
			t.Fatalf("request %d: %d from %s, want 200 from a healthy backend", i, code, id)
		}
	}
	s, _ := endpointStats(tr, bs[0].addr)
	if s.Breaker != "open" || bs[0].hits.Load() != 3 || s.Failures != 3 {
		t.Errorf("failing endpoint: breaker %q, %d hits, %d failures; want open after exactly 3", s.Breaker, bs[0].hits.Load(), s.Failures)
	}
	if st := tr.Stats(); st.Retries != 3 {
		t.Errorf("retries = %d, want 3 (one per failed attempt)", st.Retries)
	}
}

// TestTransport_FourHundredsAreNotFailures: a 4xx is the caller's problem:
// it never opens the breaker and is never retried.
func TestTransport_FourHundredsAreNotFailures(t *testing.T) {
	bs := newBackends(t, 2)
	bs[0].status.Store(http.StatusNotFound)
	bs[1].status.Store(http.StatusTooManyRequests) // without Retry-After
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{"breaker":{"consecutiveFailures":1}}`)
	c := &http.Client{Transport: tr}
	for range 20 {
		mustGet(t, c, "http://svc/")
	}
	st := tr.Stats()
	for _, e := range st.Endpoints {
		if e.Failures != 0 || e.Breaker != "closed" {
			t.Errorf("endpoint %s: %d failures, breaker %s; want 0, closed", e.Addr, e.Failures, e.Breaker)
		}
	}
	if st.Retries != 0 || bs[0].hits.Load()+bs[1].hits.Load() != 20 {
		t.Errorf("retries %d, hits %d; want 0 retries and 20 hits", st.Retries, bs[0].hits.Load()+bs[1].hits.Load())
	}
}

// TestTransport_RetryRules: with one of two servers failing with 503 and
// the breaker off, a GET and a POST carrying an Idempotency-Key are retried
// on the other server; a plain POST is sent exactly once.
func TestTransport_RetryRules(t *testing.T) {
	bs := newBackends(t, 2)
	bs[0].status.Store(http.StatusServiceUnavailable)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"enabled":false},"retry":{"minRetriesPerSecond":1000}}`)
	c := &http.Client{Transport: tr}

	const n = 40
	var got503 int
	for range n {
		code, _, err := do(t, c, http.MethodPost, "http://svc/", nil, "payload")
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusServiceUnavailable {
			got503++
		}
	}
	if hits := bs[0].hits.Load() + bs[1].hits.Load(); hits != n || got503 != int(bs[0].hits.Load()) || got503 == 0 {
		t.Errorf("POST: %d hits for %d requests, %d 503s to the caller vs %d on the failing server; want no retry", hits, n, got503, bs[0].hits.Load())
	}
	if r := tr.Stats().Retries; r != 0 {
		t.Errorf("POST: %d retries, want 0", r)
	}

	for _, tc := range []struct {
		method string
		hdr    http.Header
		body   string
	}{
		{http.MethodGet, nil, ""},
		{http.MethodPut, nil, "payload"},
		{http.MethodPost, http.Header{"Idempotency-Key": {"k-1"}}, "payload"},
	} {
		before0, before1, retries := bs[0].hits.Load(), bs[1].hits.Load(), tr.Stats().Retries
		for range n {
			code, id, err := do(t, c, tc.method, "http://svc/", tc.hdr, tc.body)
			if err != nil || code != http.StatusOK || id != "b1" {
				t.Fatalf("%s %v: %d from %q, %v; want 200 from b1", tc.method, tc.hdr, code, id, err)
			}
		}
		failed := bs[0].hits.Load() - before0
		if bs[1].hits.Load()-before1 != n || failed == 0 || tr.Stats().Retries-retries != uint64(failed) {
			t.Errorf("%s: b1 got %d, b0 got %d, retries %d; want every failure on b0 retried once on b1",
				tc.method, bs[1].hits.Load()-before1, failed, tr.Stats().Retries-retries)
		}
	}
}

// TestTransport_RetryBudget: with budgetPercent 0 and a floor of 1 retry
// per second the budget holds exactly 10 retries (1/s over its 10 s
// window, far longer than this test); further failures reach the caller
// and are counted as denied.
func TestTransport_RetryBudget(t *testing.T) {
	bs := newBackends(t, 2)
	bs[0].status.Store(http.StatusServiceUnavailable)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"enabled":false},"retry":{"budgetPercent":0,"minRetriesPerSecond":1}}`)
	c := &http.Client{Transport: tr}
	var failed int
	for range 80 {
		if code, _ := mustGet(t, c, "http://svc/"); code == http.StatusServiceUnavailable {
			failed++
		}
	}
	st := tr.Stats()
	first503 := int(bs[0].hits.Load())
	if st.Retries != 10 || int(st.RetriesDenied) != first503-10 || failed != first503-10 {
		t.Errorf("retries %d, denied %d, 503s to the caller %d, failed first attempts %d; want 10 retries and the rest denied",
			st.Retries, st.RetriesDenied, failed, first503)
	}
}

// TestTransport_KilledAndRestarted: a server killed mid-run costs no
// request (connection errors are retried elsewhere) and is ejected; once
// restarted on its address it gets traffic again through the breaker's
// trial.
func TestTransport_KilledAndRestarted(t *testing.T) {
	bs := newBackends(t, 3)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"consecutiveFailures":2,"openDuration":"100ms","halfOpenRequests":1},"retry":{"minRetriesPerSecond":100}}`)
	c := &http.Client{Transport: tr}
	for range 30 {
		mustGet(t, c, "http://svc/")
	}
	addr := bs[0].addr
	bs[0].stop()
	// Every request succeeds (failed attempts are retried elsewhere) until
	// the breaker has ejected the dead endpoint.
	waitFor(t, "the killed endpoint ejected", func() bool {
		if code, _, err := do(t, c, http.MethodGet, "http://svc/", nil, ""); err != nil || code != 200 {
			t.Fatalf("request after the kill: %d, %v", code, err)
		}
		s, _ := endpointStats(tr, addr)
		return s.Breaker == "open" && s.Failures >= 2
	})
	restarted := &backend{id: "b0", release: make(chan struct{})}
	restarted.start(t, addr)
	t.Cleanup(restarted.stop)
	waitFor(t, "traffic to the restarted server", func() bool {
		mustGet(t, c, "http://svc/")
		return restarted.hits.Load() > 0
	})
}

// TestTransport_MalformedResponses: a server that answers garbage, or cuts
// a body short, fails the request or the read with an error; nothing
// panics, in-flight returns to 0 and both count as failures.
func TestTransport_MalformedResponses(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer lis.Close()
	wg.Go(func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			n, _ := conn.Read(buf)
			if strings.Contains(string(buf[:n]), "/garbage") {
				conn.Write([]byte("HTTP/1.1 abc\r\n\r\n"))
			} else {
				conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
			}
			conn.Close()
		}
	})
	tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + lis.Addr().String()}, `{"retry":{"maxAttempts":1}}`)
	c := &http.Client{Transport: tr}
	if _, _, err := do(t, c, http.MethodGet, "http://svc/garbage", nil, ""); err == nil || !strings.Contains(err.Error(), "malformed HTTP") {
		t.Errorf("garbage response: err = %v, want a malformed HTTP error", err)
	}
	resp, err := c.Get("http://svc/short")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	var rerr error
	for rerr == nil {
		_, rerr = resp.Body.Read(buf)
	}
	if rerr.Error() != "unexpected EOF" {
		t.Errorf("short body: read error %v, want unexpected EOF", rerr)
	}
	resp.Body.Close()
	s, _ := endpointStats(tr, lis.Addr().String())
	if s.InFlight != 0 || s.Failures != 2 {
		t.Errorf("stats %+v, want 0 in flight and 2 failures", s)
	}
}

// TestTransport_SlowEndpointLosesShare: one of three servers takes 30ms per
// request, the others ~0; 8 concurrent callers. Least-request keeps
// requests off the slow one (it always holds more in flight): far below
// its fair third.
func TestTransport_SlowEndpointLosesShare(t *testing.T) {
	bs := newBackends(t, 3)
	bs[0].delay.Store(int64(30 * time.Millisecond))
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, "")
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				mustGet(t, c, "http://svc/")
			}
		})
	}
	wg.Wait()
	if share := float64(bs[0].hits.Load()) / 400; share > 0.15 {
		t.Errorf("slow endpoint share = %.2f, want < 0.15 (fair share 0.33)", share)
	}
}

// TestTransport_RetriesNeverRepeatAnEndpoint: with two of three servers
// failing and three attempts allowed, every GET ends on the healthy server
// and no server sees the same request twice: each retry goes to an
// endpoint not tried yet.
func TestTransport_RetriesNeverRepeatAnEndpoint(t *testing.T) {
	bs := newBackends(t, 3)
	bs[0].status.Store(http.StatusBadGateway)
	bs[1].status.Store(http.StatusServiceUnavailable)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"enabled":false},"retry":{"maxAttempts":3,"minRetriesPerSecond":1000}}`)
	c := &http.Client{Transport: tr}
	for i := range 60 {
		code, id, err := do(t, c, http.MethodGet, "http://svc/", http.Header{"X-Req-Id": {strconv.Itoa(i)}}, "")
		if err != nil || code != 200 || id != "b2" {
			t.Fatalf("request %d: %d from %q, %v; want 200 from b2", i, code, id, err)
		}
	}
	for _, b := range bs {
		b.mu.Lock()
		for id, n := range b.reqIDs {
			if n > 1 {
				t.Errorf("backend %s saw request %s %d times", b.id, id, n)
			}
		}
		b.mu.Unlock()
	}
	if r := tr.Stats().Retries; r != uint64(bs[0].hits.Load()+bs[1].hits.Load()) || r == 0 {
		t.Errorf("retries %d, failed attempts %d; want one retry per failed attempt", r, bs[0].hits.Load()+bs[1].hits.Load())
	}
}
