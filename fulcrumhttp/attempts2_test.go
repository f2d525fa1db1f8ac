package fulcrumhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

// stall503 makes b answer 503 headers at once and then stall its body
// until the client goes away (withLength: with a Content-Length); a setup
// of newProtoBackend.
func stall503(withLength bool) func(*backend) {
	return func(b *backend) { b.srv.Config.Handler = stallHandler(b, withLength) }
}

func stallHandler(b *backend, withLength bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if withLength {
			w.Header().Set("Content-Length", "100")
		}
		w.Header().Set("X-Backend", b.id)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.(http.Flusher).Flush()
		b.wait(r)
	})
}

// TestTransport_StalledRetriedBodyNotDrained (issue 18, defect 4): an
// endpoint that sends 503 headers and stalls its body costs the requests
// that land there nothing: the retried response is closed instead of
// drained, and the healthy endpoint serves them well before their
// deadline.
func TestTransport_StalledRetriedBodyNotDrained(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		for _, withLength := range []bool{false, true} {
			bad, good := newProtoBackend(t, "bad", h2, stall503(withLength)), newProtoBackend(t, "good", h2)
			tr := newTransport(t, map[string]string{"svc": staticTarget([]*backend{bad, good})},
				h2cConfig(`{"breaker":{"enabled":false},"latencyAware":false,"retry":{"minRetriesPerSecond":1000}}`, h2))
			c := &http.Client{Transport: tr}
			for i := 0; bad.hits.Load() < 3; i++ {
				if i == 200 {
					t.Fatal("the stalling endpoint was never picked")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
				resp, err := c.Do(req)
				if err != nil {
					cancel()
					t.Fatalf("length %v: request %d: %v; want it served by the healthy endpoint", withLength, i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cancel()
				if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "good" {
					t.Fatalf("request %d: %d from %q", i, resp.StatusCode, resp.Header.Get("X-Backend"))
				}
			}
		}
	})
}

// TestTransport_ErrorNamesFailedEndpoint (issue 18, defect 4): when the
// request fails, the error names an endpoint that received the failed
// attempt, not one the request never reached.
func TestTransport_ErrorNamesFailedEndpoint(t *testing.T) {
	bad, hung := newProtoBackend(t, "bad", false, stall503(false)), newBackend(t, "hung", "127.0.0.1:0")
	hung.hung.Store(true)
	tr := newTransport(t, map[string]string{"svc": staticTarget([]*backend{bad, hung})},
		`{"breaker":{"enabled":false},"latencyAware":false,"retry":{"minRetriesPerSecond":1000}}`)
	c := &http.Client{Transport: tr}
	for bad.hits.Load() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
		_, err := c.Do(req)
		cancel()
		if err == nil {
			t.Fatal("request served, want a timeout")
		}
		if bad.hits.Load() > 0 && hung.hits.Load() == 0 {
			t.Fatalf("err = %v: after the 503 the request never reached the other endpoint", err)
		}
		if want := hung.addr; !containsAll(err.Error(), want) {
			t.Fatalf("err = %v, want it to name the endpoint that timed out (%s)", err, want)
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}

// TestTransport_PerTryTimeout: retry.perTryTimeout ends an attempt on a
// hung endpoint and the request is served by another; a POST (not safe to
// repeat once written) fails with a timeout naming the hung endpoint.
func TestTransport_PerTryTimeout(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		hung, good := newProtoBackend(t, "hung", h2), newProtoBackend(t, "good", h2)
		hung.hung.Store(true)
		tr := newTransport(t, map[string]string{"svc": staticTarget([]*backend{hung, good})},
			h2cConfig(`{"breaker":{"enabled":false},"latencyAware":false,"retry":{"perTryTimeout":"50ms","minRetriesPerSecond":1000}}`, h2))
		c := &http.Client{Transport: tr}
		for i := 0; hung.hits.Load() < 2; i++ {
			if i == 200 {
				t.Fatal("the hung endpoint was never picked")
			}
			if code, id, err := do(t, c, http.MethodGet, "http://svc/", nil, ""); err != nil || code != 200 || id != "good" {
				t.Fatalf("GET %d: %d from %q, %v; want 200 from the healthy endpoint", i, code, id, err)
			}
		}
		for i := 0; ; i++ {
			if i == 200 {
				t.Fatal("no POST reached the hung endpoint")
			}
			_, _, err := do(t, c, http.MethodPost, "http://svc/", nil, "x")
			if err == nil {
				continue
			}
			var fe *fulcrumhttp.Error
			if !errors.As(err, &fe) || fe.Endpoint != hung.addr || fe.Attempts != 1 || !fe.Timeout() {
				t.Fatalf("POST: err = %v, want a per-try timeout of the hung endpoint after 1 attempt", err)
			}
			break
		}
	})
}

// TestTransport_BudgetPerHost (issue 18, defect 5): requests to a healthy
// host do not pay for another host's retries: 20 requests to a host whose
// endpoints all answer 503 get 20 % of 20 = 4 retries, however many
// requests the other host had.
func TestTransport_BudgetPerHost(t *testing.T) {
	healthy := newBackends(t, 1)
	failing := newBackends(t, 2)
	for _, b := range failing {
		b.status.Store(http.StatusServiceUnavailable)
	}
	tr := newTransport(t, map[string]string{"a": staticTarget(healthy), "b": staticTarget(failing)},
		`{"breaker":{"enabled":false},"retry":{"budgetPercent":20,"minRetriesPerSecond":0}}`)
	c := &http.Client{Transport: tr}
	for range 100 {
		mustGet(t, c, "http://a/")
	}
	for range 20 {
		mustGet(t, c, "http://b/")
	}
	if st := tr.Stats(); st.Retries != 4 || st.RetriesDenied != 16 {
		t.Errorf("host b: %d retries, %d denied; want 4 and 16 (its own 20 %% budget)", st.Retries, st.RetriesDenied)
	}
}

// TestTransport_IdempotencyMarkers (issue 18, defect 6): net/http's
// markers make a POST safe to repeat: X-Idempotency-Key, and an
// Idempotency-Key with a nil value (not sent on the wire); so does
// MarkIdempotent on the context.
func TestTransport_IdempotencyMarkers(t *testing.T) {
	sawKey := make(chan string, 200)
	bs := []*backend{newBackend(t, "b0", "127.0.0.1:0"), newProtoBackend(t, "b1", false, func(b *backend) {
		b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawKey <- r.Header.Get("Idempotency-Key") + "|" + strconv.Itoa(len(r.Header.Values("Idempotency-Key")))
			b.ServeHTTP(w, r)
		})
	})}
	bs[0].status.Store(http.StatusServiceUnavailable)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)},
		`{"breaker":{"enabled":false},"latencyAware":false,"retry":{"minRetriesPerSecond":1000}}`)
	c := &http.Client{Transport: tr}
	for _, tc := range []struct {
		name string
		hdr  http.Header
		ctx  func(context.Context) context.Context
	}{
		{"X-Idempotency-Key", http.Header{"X-Idempotency-Key": {"k"}}, nil},
		{"nil Idempotency-Key", http.Header{"Idempotency-Key": nil}, nil},
		{"MarkIdempotent", nil, fulcrumhttp.MarkIdempotent},
	} {
		before := bs[0].hits.Load()
		for i := range 30 {
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx(ctx)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://svc/", stringsReader("payload"))
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: POST %d: %d, want it retried on the healthy endpoint", tc.name, i, resp.StatusCode)
			}
		}
		if bs[0].hits.Load() == before {
			t.Errorf("%s: the failing endpoint was never tried", tc.name)
		}
	}
	close(sawKey)
	for k := range sawKey {
		if k != "|0" {
			t.Errorf("server saw Idempotency-Key %q, want none sent", k)
		}
	}
}
