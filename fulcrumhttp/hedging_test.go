package fulcrumhttp_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// hedgeFleet is a set of real HTTP servers on 127.0.0.1 sharing one view
// of the requests they receive: per request (header X-Call), the address
// of every arrival, and the arrivals whose context the server saw
// cancelled.
type hedgeFleet struct {
	addrs  []string
	total  atomic.Int64
	behave func(id string, k int) (d time.Duration, hang bool)

	mu        sync.Mutex
	arrivals  map[string][]string
	cancelled int
}

func startHTTPHedgeFleet(t *testing.T, n int, behave func(id string, k int) (time.Duration, bool)) *hedgeFleet {
	t.Helper()
	f := &hedgeFleet{behave: behave, arrivals: map[string][]string{}}
	for range n {
		var addr string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.total.Add(1)
			io.Copy(io.Discard, r.Body)
			id := r.Header.Get("X-Call")
			f.mu.Lock()
			k := len(f.arrivals[id])
			f.arrivals[id] = append(f.arrivals[id], addr)
			f.mu.Unlock()
			d, hang := f.behave(id, k)
			if hang {
				<-r.Context().Done()
				f.mu.Lock()
				f.cancelled++
				f.mu.Unlock()
				return
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
			if d < 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "unavailable")
				return
			}
			w.Header().Set("X-Backend", addr)
			io.WriteString(w, addr)
		}))
		addr = srv.Listener.Addr().String()
		t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
		f.addrs = append(f.addrs, addr)
	}
	return f
}

func (f *hedgeFleet) arrivalsOf(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.arrivals[id]...)
}

func hedgeClient(t *testing.T, f *hedgeFleet, hedging string, opts ...fulcrumhttp.Option) *http.Client {
	t.Helper()
	tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + strings.Join(f.addrs, ",")},
		`{"activeRequestBias":0,"slowStart":{"window":"0s"},"hedging":`+hedging+`}`, opts...)
	return &http.Client{Transport: tr}
}

func send(c *http.Client, ctx context.Context, method, id, body string) (string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://svc/x", rd)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Call", id)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestHedging_HedgeGoesElsewhereLoserCancelled: the first attempt of each
// GET hangs; the hedge goes to another endpoint (selection is weighted
// random, so without the exclusion it would hit the hung one a third of
// the time), answers, and the hung attempt is cancelled on its server.
func TestHedging_HedgeGoesElsewhereLoserCancelled(t *testing.T) {
	f := startHTTPHedgeFleet(t, 3, func(_ string, k int) (time.Duration, bool) { return 0, k == 0 })
	rec := newFakeRecorder()
	c := hedgeClient(t, f, `{"enabled":true,"delay":"20ms","minHedgesPerSecond":100}`, fulcrumhttp.WithMetrics(rec))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	const calls = 20
	for i := range calls {
		id := string(rune('a' + i))
		got, err := send(c, ctx, http.MethodGet, id, "")
		if err != nil {
			t.Fatalf("GET %s: %v", id, err)
		}
		arr := f.arrivalsOf(id)
		if len(arr) != 2 || arr[0] == arr[1] || got != arr[1] {
			t.Fatalf("GET %s reached %v, answered by %s; want two endpoints, the second answering", id, arr, got)
		}
	}
	waitFor(t, "every losing attempt cancelled on its server", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.cancelled == calls
	})
	if sent, won := rec.sum(metrics.HedgesSent, "svc"), rec.sum(metrics.HedgesWon, "svc"); sent != calls || won != calls {
		t.Errorf("hedges_sent %d, hedges_won %d; want %d each", sent, won, calls)
	}
}

// TestHedging_PostNeverHedged: a POST (not idempotent) whose attempt hangs
// is sent once; a PUT with a body is hedged (the control).
func TestHedging_PostNeverHedged(t *testing.T) {
	f := startHTTPHedgeFleet(t, 2, func(_ string, k int) (time.Duration, bool) { return 0, k == 0 })
	c := hedgeClient(t, f, `{"enabled":true,"delay":"10ms","minHedgesPerSecond":100}`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := send(c, ctx, http.MethodPost, "post", "body"); err == nil {
		t.Fatal("hung POST succeeded")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel2()
	if _, err := send(c, ctx2, http.MethodPut, "put", "body"); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	if p, u := len(f.arrivalsOf("post")), len(f.arrivalsOf("put")); p != 1 || u != 2 {
		t.Fatalf("POST reached servers %d times, PUT %d; want 1 and 2", p, u)
	}
}

// TestHedging_NearlySpentDeadlineNotHedged: a GET whose deadline leaves
// less than minDelay after the delay is sent once.
func TestHedging_NearlySpentDeadlineNotHedged(t *testing.T) {
	f := startHTTPHedgeFleet(t, 2, func(_ string, k int) (time.Duration, bool) { return 0, k == 0 })
	c := hedgeClient(t, f, `{"enabled":true,"delay":"100ms","minDelay":"10ms","minHedgesPerSecond":100}`)
	ctx, cancel := context.WithTimeout(context.Background(), 105*time.Millisecond)
	defer cancel()
	if _, err := send(c, ctx, http.MethodGet, "short", ""); err == nil {
		t.Fatal("GET whose first attempt hangs succeeded within 105ms")
	}
	if n := len(f.arrivalsOf("short")); n != 1 {
		t.Fatalf("GET with 105ms left reached servers %d times, want 1", n)
	}
}

// TestHedging_BudgetHoldsUnderOverload: every endpoint is slower than the
// delay; hedges stay within 5 % of the requests plus the reserve
// (minHedgesPerSecond 0.1 x 10 s = 1), counted on the servers.
func TestHedging_BudgetHoldsUnderOverload(t *testing.T) {
	f := startHTTPHedgeFleet(t, 3, func(string, int) (time.Duration, bool) { return 20 * time.Millisecond, false })
	rec := newFakeRecorder()
	c := hedgeClient(t, f, `{"enabled":true,"delay":"1ms","maxExtraLoadPercent":5,"minHedgesPerSecond":0.1}`, fulcrumhttp.WithMetrics(rec))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	const calls, workers = 200, 10
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := w; i < calls; i += workers {
				if _, err := send(c, ctx, http.MethodGet, "", ""); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests failed", n)
	}
	extra := f.total.Load() - calls
	if limit := int64(calls*5/100 + 1); extra < 1 || extra > limit {
		t.Fatalf("servers received %d requests for %d: %d extra, want 1..%d", f.total.Load(), calls, extra, limit)
	}
	tr := c.Transport.(*fulcrumhttp.Transport)
	if st := tr.Stats(); st.Retries != 0 {
		t.Errorf("%d retries counted for hedges", st.Retries)
	}
	if sent, refused := rec.sum(metrics.HedgesSent, "svc"), rec.sum(metrics.HedgeBudgetRejections, "svc"); sent < extra || refused == 0 {
		t.Errorf("hedges_sent %d (servers saw %d extra), hedge_budget_rejections %d (want > 0)", sent, extra, refused)
	}
}

// TestHedging_FailureSendsNextAtOnce: an attempt answered with a
// retry.statuses status (503) does not end the request: the next attempt
// goes at once, long before the (one minute) delay, to another endpoint,
// and its answer is the request's.
func TestHedging_FailureSendsNextAtOnce(t *testing.T) {
	f := startHTTPHedgeFleet(t, 2, func(_ string, k int) (time.Duration, bool) {
		if k == 0 {
			return -1, false // 503
		}
		return 0, false
	})
	c := hedgeClient(t, f, `{"enabled":true,"delay":"1m","minHedgesPerSecond":100}`)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	got, err := send(c, ctx, http.MethodGet, "x", "")
	if err != nil {
		t.Fatal(err)
	}
	arr := f.arrivalsOf("x")
	if len(arr) != 2 || arr[0] == arr[1] || got != arr[1] {
		t.Fatalf("GET reached %v, answered %q; want a second endpoint answering", arr, got)
	}
}

func TestHedging_ConfigErrors(t *testing.T) {
	_, err := fulcrumhttp.NewTransport(map[string]string{"svc": "fulcrum://static/127.0.0.1:1"},
		fulcrumhttp.WithConfig(`{"hedging":{"enabled":true,"maxAttempts":7}}`))
	if err == nil || !strings.Contains(err.Error(), "fulcrumhttp: hedging.maxAttempts: 7, must be in [2, 5]") {
		t.Fatalf("maxAttempts 7: %v", err)
	}
}
