package fulcrumhttp_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

const fastProbe = `"healthProbe":{"path":"/healthz","interval":"20ms","timeout":"15ms","jitter":0,"unhealthyThreshold":2,"healthyThreshold":1}`

// TestTransport_HungEndpointProbedOut: a server that accepts connections
// but never answers (probes included) is marked unhealthy by probe
// timeouts and gets no further requests.
func TestTransport_HungEndpointProbedOut(t *testing.T) {
	bs := newBackends(t, 3)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{`+fastProbe+`}`)
	c := &http.Client{Transport: tr}
	mustGet(t, c, "http://svc/")
	bs[0].hung.Store(true)
	waitFor(t, "the hung endpoint marked unhealthy", func() bool {
		s, _ := endpointStats(tr, bs[0].addr)
		return !s.Healthy
	})
	before := bs[0].hits.Load()
	for range 50 {
		if code, id := mustGet(t, c, "http://svc/"); code != 200 || id == "b0" {
			t.Fatalf("%d from %s after the hung endpoint was marked unhealthy", code, id)
		}
	}
	if bs[0].hits.Load() != before {
		t.Errorf("hung endpoint got %d requests after it was marked unhealthy", bs[0].hits.Load()-before)
	}
}

// TestTransport_WarmupWaitsForFirstProbe: with probing on, an endpoint gets
// no request before its first successful probe, and a request sent before
// then waits instead of failing.
func TestTransport_WarmupWaitsForFirstProbe(t *testing.T) {
	bs := newBackends(t, 1)
	bs[0].health.Store(http.StatusServiceUnavailable)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{"panicThresholdPercent":0,`+fastProbe+`}`)
	c := &http.Client{Transport: tr}
	waitFor(t, "a first probe", func() bool { return bs[0].probes.Load() > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
	_, err := c.Do(req)
	if err == nil || bs[0].hits.Load() != 0 {
		t.Fatalf("request to an endpoint failing its probes: err %v, hits %d; want an error and no hit", err, bs[0].hits.Load())
	}
	if !errors.Is(err, fulcrumhttp.ErrNoUsableEndpoint) || !strings.Contains(err.Error(), `host "svc" (target "fulcrum://static/`) || !strings.Contains(err.Error(), "unhealthy") {
		t.Errorf("error %q, want it to name the host, the target and the reason", err)
	}
	bs[0].health.Store(0)
	waitFor(t, "the endpoint healthy", func() bool { s, _ := endpointStats(tr, bs[0].addr); return s.Healthy })
	if code, _ := mustGet(t, c, "http://svc/"); code != 200 {
		t.Errorf("status %d once healthy", code)
	}
}

// TestTransport_ProbeNotFound: a 404 to the probe means "no health
// endpoint": healthy by default, unhealthy with notFoundIsHealthy false.
func TestTransport_ProbeNotFound(t *testing.T) {
	for _, tc := range []struct {
		cfg         string
		wantHealthy bool
	}{
		{`{` + fastProbe + `}`, true},
		{`{"healthProbe":{"path":"/healthz","interval":"20ms","timeout":"15ms","notFoundIsHealthy":false}}`, false},
	} {
		bs := newBackends(t, 1)
		bs[0].health.Store(http.StatusNotFound)
		tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, tc.cfg)
		waitFor(t, "two probes", func() bool { return bs[0].probes.Load() >= 2 })
		if s, _ := endpointStats(tr, bs[0].addr); s.Healthy != tc.wantHealthy {
			t.Errorf("%s: healthy = %v, want %v", tc.cfg, s.Healthy, tc.wantHealthy)
		}
	}
}

// TestTransport_RetryAfterHoldsEndpoint: a 503 with Retry-After: 1 takes
// its endpoint out of rotation (not through the breaker, which is off)
// for about a second; then it gets traffic again.
func TestTransport_RetryAfterHoldsEndpoint(t *testing.T) {
	bs := newBackends(t, 2)
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{"breaker":{"enabled":false}}`)
	c := &http.Client{Transport: tr}
	bs[0].once503.Store(1)
	waitFor(t, "the 503 with Retry-After", func() bool {
		mustGet(t, c, "http://svc/")
		return bs[0].once503.Load() <= 0
	})
	held := time.Now()
	before := bs[0].hits.Load()
	for range 30 {
		if code, id := mustGet(t, c, "http://svc/"); code != 200 || id != "b1" {
			t.Fatalf("during the hold: %d from %s, want 200 from b1", code, id)
		}
	}
	if time.Since(held) < 900*time.Millisecond && bs[0].hits.Load() != before {
		t.Errorf("held endpoint got %d requests within its Retry-After", bs[0].hits.Load()-before)
	}
	waitFor(t, "traffic after the hold", func() bool {
		mustGet(t, c, "http://svc/")
		return bs[0].hits.Load() > before
	})
	if time.Since(held) < 900*time.Millisecond {
		t.Errorf("endpoint back after %v, want the 1s Retry-After", time.Since(held))
	}
}

// TestTransport_CloseLeavesNoGoroutine: with resolution, probers, a hold
// timer and pooled connections running, Close stops all of them, and
// requests after Close fail with ErrClosed.
func TestTransport_CloseLeavesNoGoroutine(t *testing.T) {
	bs := newBackends(t, 3)
	ignore := goleak.IgnoreCurrent()
	tr, err := fulcrumhttp.NewTransport(map[string]string{"svc": staticTarget(bs), "dns-svc": "fulcrum://dns/localhost:1"},
		fulcrumhttp.WithConfig(`{`+fastProbe+`}`))
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: tr}
	bs[0].once503.Store(1)
	for range 10 {
		mustGet(t, c, "http://svc/")
	}
	waitFor(t, "probes", func() bool { return bs[2].probes.Load() >= 2 })
	tr.Close()
	goleak.VerifyNone(t, ignore)
	if _, _, err := do(t, c, http.MethodGet, "http://svc/", nil, ""); !errors.Is(err, fulcrumhttp.ErrClosed) {
		t.Errorf("request after Close: err = %v, want ErrClosed", err)
	}
}
