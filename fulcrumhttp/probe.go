package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	rand "math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// probeSpec is what a prober needs; read-only.
type probeSpec struct {
	url                string // scheme://logical-host/path
	interval, timeout  time.Duration
	jitter             float64
	healthyThreshold   int
	unhealthyThreshold int
	notFoundIsHealthy  bool
}

// maxProbeBody is how much of a probe's response body is read so the
// connection can be reused; the rest is discarded with the connection.
const maxProbeBody = 64 << 10

// startProber probes one endpoint over its own transport (the connections
// of its traffic) until the returned stop is called: GET spec.url, first
// at once, then after each probe ends a wait of interval x (1 ± jitter).
// observe is called, from the prober's goroutine, after every completed
// probe, and then report with every change of the verdict (the first probe
// always gives one). stop waits for the goroutine.
func startProber(rt http.RoundTripper, spec probeSpec, addr string, observe func(healthprobe.Probe), report func(healthy bool, reason string)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var v healthprobe.Verdict
		warned := false
		for {
			start := time.Now()
			outcome, why := probeOnce(ctx, rt, spec)
			if ctx.Err() != nil {
				return
			}
			end := time.Now()
			observe(healthprobe.Probe{Outcome: outcome, Reason: why, At: end, Duration: end.Sub(start)})
			ok := outcome == healthprobe.OutcomeHealthy
			if ok && why == notFoundHealthy && !warned {
				warned = true
				logger.Warningf("endpoint %s: GET %s answered 404: no health endpoint, treated as healthy (set healthProbe.notFoundIsHealthy to false to count it as a failure)", addr, spec.url)
			}
			if v.Observe(ok, why, spec.healthyThreshold, spec.unhealthyThreshold) {
				report(v.Healthy(), v.Reason())
			}
			wait := spec.interval
			if spec.jitter > 0 {
				wait = time.Duration(float64(wait) * (1 + spec.jitter*(2*rand.Float64()-1)))
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

const notFoundHealthy = "404: no health endpoint, treated as healthy"

// probeOnce sends one probe and classifies it: 2xx is healthy, a 404 is
// what notFoundIsHealthy says, any other status is unhealthy, no answer
// within the timeout is a timeout, and any other failure an error.
func probeOnce(ctx context.Context, rt http.RoundTripper, spec probeSpec) (healthprobe.Outcome, string) {
	ctx, cancel := context.WithTimeout(ctx, spec.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.url, nil)
	if err != nil {
		return healthprobe.OutcomeError, err.Error()
	}
	req.Header.Set("User-Agent", "fulcrumhttp-healthprobe")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return healthprobe.OutcomeTimeout, fmt.Sprintf("timeout after %v", spec.timeout)
		}
		return healthprobe.OutcomeError, err.Error()
	}
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	resp.Body.Close()
	switch {
	case rerr != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return healthprobe.OutcomeTimeout, fmt.Sprintf("timeout after %v reading the body", spec.timeout)
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return healthprobe.OutcomeHealthy, resp.Status
	case resp.StatusCode == http.StatusNotFound && spec.notFoundIsHealthy:
		return healthprobe.OutcomeHealthy, notFoundHealthy
	}
	return healthprobe.OutcomeUnhealthy, resp.Status
}
