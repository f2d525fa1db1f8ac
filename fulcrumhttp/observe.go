package fulcrumhttp

import (
	"errors"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/driver"
	"github.com/fulcrum-lb/fulcrum/metrics"
	"github.com/fulcrum-lb/fulcrum/picker"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// WithMetrics records every host's metrics through rec: the definitions of
// metrics.All, the same names and meanings as the gRPC policy's, labelled
// grpc.target = the host key, plus grpc.lb.fulcrum.retries and
// grpc.lb.fulcrum.retry_budget_rejections. For OpenTelemetry use the
// nested module github.com/fulcrum-lb/fulcrum/metrics/otelmetrics:
//
//	fulcrumhttp.WithMetrics(otelmetrics.NewRecorder(provider))
//
// Default: nothing recorded. Every host is listed in fulcrumz either way.
func WithMetrics(rec metrics.Recorder) Option {
	return func(o *options) error {
		if rec == nil {
			return errors.New("fulcrumhttp: WithMetrics: nil, must be a metrics.Recorder (metrics.Nop records nothing)")
		}
		o.rec = rec
		return nil
	}
}

// newObserver registers a host's metrics and fulcrumz entry (package
// driver): the same names and meanings as the gRPC policy's.
func newObserver(g *group, rec metrics.Recorder) *driver.Observer {
	return driver.NewObserver(g.set, driver.ObserverOptions{
		Transport: "http",
		Target:    g.route.key,
		Recorder:  rec,
		Config: func() (any, time.Duration, bool) {
			var decay time.Duration
			if g.pcfg.LatencyAware {
				decay = time.Duration(g.pcfg.LatencyDecay)
			}
			// The config in force: probing is on only with a path.
			cfg := *g.t.cfg
			cfg.HealthProbe.Enabled = cfg.probing()
			return &cfg, decay, true
		},
	})
}

// noUsable counts a request that fails because no endpoint is usable: a
// first attempt's pick failing with ErrNoUsableEndpoint (not ErrClosed). A
// retry with nowhere else to go is not counted: the request has the failed
// attempt's result.
func (g *group) noUsable(err error, tried []*picker.Endpoint) {
	if len(tried) == 0 && errors.Is(err, ErrNoUsableEndpoint) {
		g.obs.Metrics().NoUsableEndpoint()
	}
}

// breakerChanged is the engine's Options.OnBreakerChange.
func (g *group) breakerChanged(key string, from, to breaker.State) {
	g.obs.Metrics().BreakerChanged(key, from, to)
}

// observeProbe records one completed probe of ep: the metric, and the
// engine's last probe for the snapshot.
func (g *group) observeProbe(ep *endpoint, p probe.Probe) {
	g.obs.Probe(ep.rec, p)
}
