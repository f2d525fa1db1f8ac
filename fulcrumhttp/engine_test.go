package fulcrumhttp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
)

// pushSource is a discovery source the test drives: push reports a new
// endpoint set.
type pushSource struct {
	mu     sync.Mutex
	report func(fresolver.Update)
}

var pushSources atomic.Int64

// newPushSource registers a fresh source and returns it with its target.
func newPushSource() (*pushSource, string) {
	s := &pushSource{}
	name := fmt.Sprintf("push-%d", pushSources.Add(1))
	fresolver.RegisterSource(name, s)
	return s, "fulcrum://" + name + "/svc"
}

func (s *pushSource) Watch(_ context.Context, _ string, report func(fresolver.Update)) (func(), func(), error) {
	s.mu.Lock()
	s.report = report
	s.mu.Unlock()
	return nil, nil, nil
}

// push reports bs (with weights, if given) as the full set.
func (s *pushSource) push(t *testing.T, bs []*backend, weights ...uint32) {
	t.Helper()
	var u fresolver.Update
	for i, b := range bs {
		ep := fresolver.Endpoint{Addresses: []string{b.addr}}
		if i < len(weights) {
			ep.Weight = weights[i]
		}
		u.Endpoints = append(u.Endpoints, ep)
	}
	s.mu.Lock()
	report := s.report
	s.mu.Unlock()
	if report == nil {
		t.Fatal("source not watched")
	}
	report(u)
}

// TestTransport_PanicMode: every endpoint fails its probes. With the
// default panicThresholdPercent (50) requests are spread over all of them
// anyway; with panic mode off they fail with an error naming the host, the
// target and the reason.
func TestTransport_PanicMode(t *testing.T) {
	bs := newBackends(t, 3)
	for _, b := range bs {
		b.health.Store(http.StatusInternalServerError)
	}
	// Every verdict unhealthy AND the engine's decision made from them: a
	// verdict is in Stats before the driver's next decision, and requests
	// sent between the two follow the older one (under load, all 30 went
	// to the one endpoint still usable in it).
	unhealthy := func(tr *fulcrumhttp.Transport) func() bool {
		return func() bool {
			eps := tr.Stats().Endpoints
			for _, e := range eps {
				if e.Healthy || e.State != "unhealthy" {
					return false
				}
			}
			return len(eps) == len(bs)
		}
	}
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{`+fastProbe+`}`)
	c := &http.Client{Transport: tr}
	waitFor(t, "all endpoints unhealthy", unhealthy(tr))
	for range 30 {
		if code, _ := mustGet(t, c, "http://svc/"); code != 200 {
			t.Fatalf("panic mode: status %d", code)
		}
	}
	for i, b := range bs {
		if b.hits.Load() == 0 {
			t.Errorf("panic mode: backend %d got no request, want traffic spread over all", i)
		}
	}

	off := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{"panicThresholdPercent":0,`+fastProbe+`}`)
	waitFor(t, "all endpoints unhealthy", unhealthy(off))
	_, _, err := do(t, &http.Client{Transport: off}, http.MethodGet, "http://svc/", nil, "")
	want := `fulcrumhttp: host "svc" (target "` + staticTarget(bs) + `"): no usable endpoint among 3: 3 unhealthy`
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fulcrumhttp.ErrNoUsableEndpoint) {
		t.Errorf("panic mode off: err = %v, want it to contain %q", err, want)
	}
}

// TestTransport_SlowStartRampsNewEndpoint: endpoints of the first
// resolution serve at full weight; one added later starts at
// minWeightPercent of its weight (10 % for its first second of a 10s
// window) and so gets far less than its third of sequential requests.
func TestTransport_SlowStartRampsNewEndpoint(t *testing.T) {
	bs := newBackends(t, 3)
	src, target := newPushSource()
	tr := newTransport(t, map[string]string{"svc": target}, `{"latencyAware":false,"slowStart":{"window":"10s","minWeightPercent":10}}`)
	c := &http.Client{Transport: tr}
	src.push(t, bs[:2])
	mustGet(t, c, "http://svc/")
	src.push(t, bs)
	waitFor(t, "the new endpoint", func() bool { _, ok := endpointStats(tr, bs[2].addr); return ok })
	for range 300 {
		mustGet(t, c, "http://svc/")
	}
	// At factor 0.1 (0.2 after 2s) its expected share is 4.8 % (9 %),
	// 14 (27) of 300; a third would be 100.
	if got := bs[2].hits.Load(); got > 45 {
		t.Errorf("new endpoint got %d of 300 requests during slow start, want < 45", got)
	}
	if s, _ := endpointStats(tr, bs[2].addr); !strings.HasPrefix(s.Reason, "slow start") {
		t.Errorf("new endpoint reason %q, want slow start", s.Reason)
	}
}

// TestTransport_RemovedEndpoint: an endpoint that leaves the resolved set
// stops being probed and picked, while a response already streaming from
// it completes.
func TestTransport_RemovedEndpoint(t *testing.T) {
	bs := newBackends(t, 2)
	release, stop := make(chan struct{}), make(chan struct{})
	// Runs before the servers' Close: a failure before close(release) must
	// not leave Close waiting for the blocked handler.
	t.Cleanup(func() { close(stop) })
	bs[0].srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			bs[0].probes.Add(1)
			return
		}
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-stop:
		}
		io.WriteString(w, "last\n")
	})
	src, target := newPushSource()
	tr := newTransport(t, map[string]string{"svc": target}, `{`+fastProbe+`}`)
	c := &http.Client{Transport: tr}
	src.push(t, bs[:1])
	resp, err := c.Get("http://svc/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if l, _ := r.ReadString('\n'); l != "first\n" {
		t.Fatalf("first line %q", l)
	}

	src.push(t, bs[1:])
	waitFor(t, "the old endpoint removed", func() bool { _, ok := endpointStats(tr, bs[0].addr); return !ok })
	for range 10 {
		if code, id := mustGet(t, c, "http://svc/"); code != 200 || id != "b1" {
			t.Fatalf("after removal: %d from %q, want 200 from b1", code, id)
		}
	}
	close(release)
	probes := bs[0].probes.Load()
	if rest, err := io.ReadAll(r); err != nil || string(rest) != "last\n" {
		t.Errorf("stream from the removed endpoint: %q, %v; want it to complete", rest, err)
	}
	time.Sleep(60 * time.Millisecond) // three probe intervals
	if got := bs[0].probes.Load(); got != probes {
		t.Errorf("removed endpoint probed %d more times", got-probes)
	}
}
