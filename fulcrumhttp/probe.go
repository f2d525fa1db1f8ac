package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	fconfig "github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// probeSpec is what an endpoint's prober needs; read-only.
type probeSpec struct {
	url               string       // scheme://logical-host/path
	cfg               probe.Config // interval before the host's probe budget
	notFoundIsHealthy bool
}

// probeSpec returns the probe of the endpoints of route r.
func (t *Transport) probeSpec(r route) probeSpec {
	scheme := t.cfg.HealthProbe.Scheme
	if scheme == "" {
		scheme = "http"
		if t.tlsConfig != nil {
			scheme = "https"
		}
	}
	return probeSpec{
		url:               scheme + "://" + r.key + t.cfg.HealthProbe.Path,
		cfg:               t.cfg.HealthProbe.Config,
		notFoundIsHealthy: t.cfg.HealthProbe.NotFoundIsHealthy,
	}
}

// budgeted returns the config of one prober of a host of n endpoints: the
// interval scaled to the host's probe budget, healthProbe.maxProbesPerSecond
// (probe.ScaledInterval; README, "Probe load").
func (s probeSpec) budgeted(n int) probe.Config {
	c := s.cfg
	c.Interval = fconfig.Duration(probe.ScaledInterval(time.Duration(c.Interval), n, c.MaxProbesPerSecond))
	return c
}

// maxProbeBody is how much of a probe's response body is read so the
// connection can be reused; the rest is discarded with the connection.
const maxProbeBody = 64 << 10

// httpProber probes one endpoint over its own transport (the connections
// of its traffic): GET spec.url. It is the probe.Prober of the endpoint's
// probe.Loop.
type httpProber struct {
	rt   http.RoundTripper
	spec probeSpec
}

// startProber starts the probe loop of one endpoint with cfg (budgeted):
// observe is called after every completed probe, report with every change
// of the verdict (the first probe always gives one), from the loop's
// goroutine. A 404 taken for healthy is logged once per loop. Close the
// loop without holding a lock the callbacks take (g.mu).
func startProber(rt http.RoundTripper, spec probeSpec, cfg probe.Config, addr string, observe func(probe.Probe), report func(healthy bool, reason string)) *probe.Loop {
	return probe.Start(httpProber{rt: rt, spec: spec}, cfg, probe.Callbacks{
		Observe: observe,
		Verdict: report,
		Note: func(r probe.Result) {
			if r.Note == probe.AssumedHealthy {
				logger.Warningf("endpoint %s: GET %s answered 404: no health endpoint, treated as healthy (set healthProbe.notFoundIsHealthy to false to count it as a failure)", addr, spec.url)
			}
		},
	}, probe.Options{})
}

// Probe sends one probe and classifies it: 2xx is healthy, a 404 is what
// notFoundIsHealthy says, any other status is unhealthy, no answer within
// the timeout (ctx's) is a timeout, and any other failure an error.
func (p httpProber) Probe(ctx context.Context) probe.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.spec.url, nil)
	if err != nil {
		return probe.Result{Outcome: probe.Error, Reason: err.Error()}
	}
	req.Header.Set("User-Agent", "fulcrumhttp-healthprobe")
	timeout := time.Duration(p.spec.cfg.Timeout)
	resp, err := p.rt.RoundTrip(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return probe.Result{Outcome: probe.Timeout, Reason: fmt.Sprintf("timeout after %v", timeout)}
		}
		return probe.Result{Outcome: probe.Error, Reason: err.Error()}
	}
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	resp.Body.Close()
	switch {
	case rerr != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return probe.Result{Outcome: probe.Timeout, Reason: fmt.Sprintf("timeout after %v reading the body", timeout)}
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return probe.Result{Outcome: probe.Healthy, Reason: resp.Status}
	case resp.StatusCode == http.StatusNotFound && p.spec.notFoundIsHealthy:
		return probe.Result{Outcome: probe.Healthy, Reason: "404: no health endpoint, treated as healthy", Note: probe.AssumedHealthy}
	}
	return probe.Result{Outcome: probe.Unhealthy, Reason: resp.Status}
}
