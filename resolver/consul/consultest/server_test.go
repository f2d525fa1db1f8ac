package consultest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testTimeout = 5 * time.Second

// newServer starts a server and a consul/api client for it; both are closed
// when the test ends.
func newServer(t *testing.T, opts consultest.Options) (*consultest.Server, *api.Client) {
	t.Helper()
	s := consultest.NewServer(opts)
	cfg, tr := s.Config()
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		tr.CloseIdleConnections()
	})
	return s, c
}

// get sends a raw GET and returns status, headers and body.
func get(t *testing.T, s *consultest.Server, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestHealthService_NonBlockingAnswer: without index the endpoint answers
// at once with the instances, X-Consul-Index >= 1 and the leader headers.
func TestHealthService_NonBlockingAnswer(t *testing.T) {
	s, c := newServer(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80, Tags: []string{"v1"}, Meta: map[string]string{"zone": "z1"}, Weights: api.AgentWeights{Passing: 3, Warning: 1}})
	s.Register(consultest.Instance{ID: "b", Service: "web", Address: "10.0.0.2", Port: 81, Status: api.HealthCritical})
	s.Register(consultest.Instance{ID: "x", Service: "other", Port: 82})

	entries, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	require.Equal(t, "a", entries[0].Service.ID)
	require.Equal(t, "", entries[0].Service.Address, "service address left empty: clients use the node's")
	require.Equal(t, "127.0.0.1", entries[0].Node.Address)
	require.Equal(t, api.AgentWeights{Passing: 3, Warning: 1}, entries[0].Service.Weights)
	require.Equal(t, map[string]string{"zone": "z1"}, entries[0].Service.Meta)
	require.Equal(t, api.HealthPassing, entries[0].Checks.AggregatedStatus())
	require.Equal(t, api.HealthCritical, entries[1].Checks.AggregatedStatus())
	require.Equal(t, api.AgentWeights{Passing: 1, Warning: 1}, entries[1].Service.Weights, "Consul's default weights")
	require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
	require.True(t, meta.KnownLeader)

	code, h, _ := get(t, s, "/v1/health/service/web")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.Equal(t, "0", h.Get("X-Consul-LastContact"))
}

// TestHealthService_Filters: ?passing keeps passing instances only, every
// ?tag must match, ?ns selects the namespace, an unknown ?dc is a 500.
func TestHealthService_Filters(t *testing.T) {
	s, c := newServer(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80, Tags: []string{"v1", "eu"}})
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81, Tags: []string{"v1"}, Status: api.HealthWarning})
	s.Register(consultest.Instance{ID: "c", Service: "web", Port: 82, Namespace: "team"})

	ids := func(tags []string, passing bool, q *api.QueryOptions) []string {
		entries, _, err := c.Health().ServiceMultipleTags("web", tags, passing, q)
		require.NoError(t, err)
		var out []string
		for _, e := range entries {
			out = append(out, e.Service.ID)
		}
		return out
	}
	require.Equal(t, []string{"a", "b"}, ids(nil, false, nil))
	require.Equal(t, []string{"a"}, ids(nil, true, nil), "warning is not passing")
	require.Equal(t, []string{"a", "b"}, ids([]string{"v1"}, false, nil))
	require.Equal(t, []string{"a"}, ids([]string{"v1", "eu"}, false, nil))
	require.Equal(t, []string{"c"}, ids(nil, false, &api.QueryOptions{Namespace: "team"}))

	_, _, err := c.Health().Service("web", "", false, &api.QueryOptions{Datacenter: "mars"})
	var se api.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, 500, se.Code)
	require.Equal(t, "No path to datacenter", se.Body)

	code, _, body := get(t, s, "/v1/health/service/web?stale&consistent")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Cannot specify ?stale with ?consistent")
	code, _, body = get(t, s, "/v1/health/service/web?index=x")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Invalid index")
	code, _, body = get(t, s, "/v1/health/service/web?index=1&wait=soon")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Invalid wait time")
}

// TestHealthService_BlocksUntilChange: a query with the current index hangs
// until a write to the service and returns the new index.
func TestHealthService_BlocksUntilChange(t *testing.T) {
	s, c := newServer(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	_, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)

	type result struct {
		n   int
		idx uint64
		err error
	}
	ch := make(chan result, 1)
	go func() {
		e, m, err := c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		if err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{len(e), m.LastIndex, nil}
	}()
	select {
	case r := <-ch:
		t.Fatalf("query with the current index returned at once: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	s.Touch("other") // a write to another service does not wake it
	select {
	case r := <-ch:
		t.Fatalf("a write to another service ended the query: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81})
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		require.Equal(t, 2, r.n)
		require.Greater(t, r.idx, meta.LastIndex)
	case <-time.After(testTimeout):
		t.Fatal("query did not return after a write to its service")
	}
}

// TestHealthService_WaitTimesOut: without a change the query returns after
// wait and at most wait/16 more, with the same index.
func TestHealthService_WaitTimesOut(t *testing.T) {
	s, c := newServer(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	_, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	const wait = 320 * time.Millisecond
	start := time.Now()
	_, m2, err := c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: wait})
	require.NoError(t, err)
	took := time.Since(start)
	require.Equal(t, meta.LastIndex, m2.LastIndex)
	require.GreaterOrEqual(t, took, wait)
	require.Less(t, took, wait+wait/16+2*time.Second, "a busy machine may add latency, never seconds")
}

// TestHealthService_IndexGoesBackwards: after a snapshot restore a query
// blocked on a higher index keeps blocking until its wait ends, then answers
// with the lower index; a query with index 0 answers at once.
func TestHealthService_IndexGoesBackwards(t *testing.T) {
	s, c := newServer(t, consultest.Options{})
	for i := range 5 {
		s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80 + i})
	}
	_, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	s.RestoreSnapshot(2)
	start := time.Now()
	_, m2, err := c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 200 * time.Millisecond})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "blocked until wait")
	require.Equal(t, uint64(2), m2.LastIndex)
	require.Less(t, m2.LastIndex, meta.LastIndex)
	_, m3, err := c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: 0})
	require.NoError(t, err)
	require.Equal(t, uint64(2), m3.LastIndex)
}

// TestHealthService_Faults pins each injected fault.
func TestHealthService_Faults(t *testing.T) {
	s, c := newServer(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	_, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)

	s.SetFailure(500, "No cluster leader")
	_, _, err = c.Health().Service("web", "", false, nil)
	var se api.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, api.StatusError{Code: 500, Body: "No cluster leader"}, se)
	s.SetFailure(0, "")

	s.SetKnownLeader(false)
	s.SetEmptyAnswers(true)
	e, m, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	require.Empty(t, e)
	require.False(t, m.KnownLeader)
	require.Equal(t, meta.LastIndex, m.LastIndex)
	leader, err := c.Status().Leader()
	require.NoError(t, err)
	require.Empty(t, leader, "no leader")
	s.SetKnownLeader(true)
	s.SetEmptyAnswers(false)
	leader, err = c.Status().Leader()
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8300", leader)

	s.SetIndexZero(true)
	start := time.Now()
	_, m, err = c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: 0})
	require.NoError(t, err)
	require.Zero(t, m.LastIndex)
	require.Less(t, time.Since(start), 100*time.Millisecond, "index 0 never blocks: sending it back busy-loops")
	start = time.Now()
	s.Touch("web")
	_, m, err = c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: 1, WaitTime: 150 * time.Millisecond})
	require.NoError(t, err)
	require.Zero(t, m.LastIndex)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "index 1 blocks until wait: nothing exceeds index 0")
	s.SetIndexZero(false)

	s.SetNoBlock(true)
	idx := s.Index()
	start = time.Now()
	_, m, err = c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: idx, WaitTime: 150 * time.Millisecond})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 100*time.Millisecond)
	require.Equal(t, idx, m.LastIndex, "answered at once without a change")
	s.SetNoBlock(false)

	s.SetDelay(200 * time.Millisecond)
	start = time.Now()
	_, _, err = c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	s.SetDelay(0)

	reqs := s.Requests()
	require.Len(t, reqs, 7)
	require.Equal(t, strconv.FormatUint(idx, 10), reqs[len(reqs)-2].Query.Get("index"))
	require.Equal(t, "150ms", reqs[len(reqs)-2].Wait)
}

// TestHealthService_CloseEndsBlockedQueries: Close returns while a query is
// blocked, and the query fails instead of hanging.
func TestHealthService_CloseEndsBlockedQueries(t *testing.T) {
	s := consultest.NewServer(consultest.Options{})
	cfg, tr := s.Config()
	defer tr.CloseIdleConnections()
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	_, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		_, _, err := c.Health().Service("web", "", false, (&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute}).WithContext(ctx))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		require.Error(t, err)
	case <-time.After(testTimeout):
		t.Fatal("blocked query outlived Close")
	}
}
