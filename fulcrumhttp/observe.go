package fulcrumhttp

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/metrics"
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

// observer is what one host reports to operators: its metrics and its
// fulcrumz entry. Everything is recorded on state changes, in the decision
// path, on retries and on probes; a successful request records nothing.
type observer struct {
	// Read-only after newObserver.
	m          *metrics.Channel
	unregister func() // from fulcrumz
}

func newObserver(g *group, rec metrics.Recorder) *observer {
	key := g.route.key
	o := &observer{}
	o.m = metrics.NewChannel(rec, key, func() (endpointset.Counts, bool, bool) {
		c, panicking := g.set.Counts()
		return c, panicking, true
	})
	o.unregister = fulcrumz.Register("http", key, g.view)
	return o
}

// close removes the host's gauges and its fulcrumz entry.
func (o *observer) close() {
	o.unregister()
	o.m.Close()
}

// view is the host's state for fulcrumz.
func (g *group) view() (endpointset.View, any, bool) {
	var decay time.Duration
	if g.pcfg.LatencyAware {
		decay = time.Duration(g.pcfg.LatencyDecay)
	}
	return g.set.View(decay), g.t.cfgJSON, true
}

// configJSON is c in force, as WithConfig's JSON writes it: the shared
// fields without the gRPC-only ones, plus the HTTP-only ones.
func (c *config) configJSON() json.RawMessage {
	b, err := json.Marshal(c.LB)
	var m map[string]any
	if err != nil || json.Unmarshal(b, &m) != nil {
		return nil
	}
	if br, ok := m["breaker"].(map[string]any); ok {
		delete(br, "failureCodes")
		br["failureStatuses"] = c.FailureStatuses
		br["maxRetryAfter"] = c.MaxRetryAfter.String()
	}
	if hp, ok := m["healthProbe"].(map[string]any); ok {
		delete(hp, "service")
		delete(hp, "unimplementedIsHealthy")
		hp["enabled"] = c.probing()
		hp["path"] = c.ProbePath
		hp["notFoundIsHealthy"] = c.NotFoundIsHealthy
		hp["scheme"] = c.ProbeScheme
	}
	m["h2c"] = c.H2C
	m["maxIdleConnsPerEndpoint"] = c.MaxIdleConnsPerEndpoint
	m["idleConnTimeout"] = c.IdleConnTimeout.String()
	m["retry"] = map[string]any{
		"maxAttempts": c.Retry.MaxAttempts, "statuses": c.Retry.Statuses,
		"budgetPercent": c.Retry.BudgetPercent, "minRetriesPerSecond": c.Retry.MinRetriesPerSecond,
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return out
}

// noUsable counts a request that fails because no endpoint is usable: a
// first attempt's pick failing with ErrNoUsableEndpoint (not ErrClosed). A
// retry with nowhere else to go is not counted: the request has the failed
// attempt's result.
func (g *group) noUsable(err error, tried []*endpoint) {
	if len(tried) == 0 && errors.Is(err, ErrNoUsableEndpoint) {
		g.obs.m.NoUsableEndpoint()
	}
}

// breakerChanged is the engine's Options.OnBreakerChange.
func (g *group) breakerChanged(key string, from, to breaker.State) {
	g.obs.m.BreakerChanged(key, from, to)
}

// observeProbe records one completed probe of ep: the metric, and the
// engine's last probe for the snapshot.
func (g *group) observeProbe(ep *endpoint, p healthprobe.Probe) {
	g.obs.m.Probe(p.Outcome.String(), p.Duration)
	g.set.ObserveProbe(ep.rec, endpointset.ProbeResult{Outcome: p.Outcome.String(), Reason: p.Reason, At: p.At, Duration: p.Duration})
}
