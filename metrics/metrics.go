// Package metrics defines Fulcrum's metrics — names, kinds, units, labels
// and meanings, the same for every transport — and records them for one
// channel or host through a transport-neutral Recorder.
//
// The gRPC adapter records through the ClientConn's MetricsRecorder
// (GRPC): the metrics are registered with grpc-go's experimental/stats
// registry, off by default, and exported by grpc-go's OpenTelemetry plugin
// when enabled by name, as grpc-go's own weighted_round_robin and
// pick_first metrics are (gRFC A79). The HTTP transport records through any
// Recorder (fulcrumhttp.WithMetrics); the nested module metrics/otelmetrics
// implements one over an OpenTelemetry MeterProvider with the same
// definitions (All).
//
// Everything is recorded on state changes and in the engine's decision
// path, never per successful request: counters when something happens,
// gauges read at collection time from the engine's last decision.
package metrics

// Kind is the kind of instrument of a Metric.
type Kind uint8

const (
	// Counter is a monotonic int64 sum.
	Counter Kind = iota
	// Gauge is an int64 value read at collection time (an asynchronous,
	// observable gauge).
	Gauge
	// Histogram is a distribution of float64 values.
	Histogram
)

func (k Kind) String() string {
	switch k {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	}
	return "unknown"
}

// Metric describes one of Fulcrum's metrics.
type Metric struct {
	Name        string
	Kind        Kind
	Unit        string // UCUM, as OpenTelemetry and grpc-go write it
	Description string
	// Labels are the label keys, in the order values are passed.
	Labels []string
	// Bounds are a histogram's bucket boundaries.
	Bounds []float64
}

// Label keys. Every value set is small and fixed, except the channel's
// target.
const (
	// LabelTarget is the channel's canonical target, as grpc-go labels
	// its own metrics (or the HTTP transport's host key).
	LabelTarget = "grpc.target"
	// LabelEndpointState is one of usable, slow_start, connecting,
	// disconnected, warming, unhealthy, ejected.
	LabelEndpointState = "grpc.lb.fulcrum.endpoint_state"
	// LabelBreakerState is the state a breaker moved to: open, half_open,
	// closed.
	LabelBreakerState = "grpc.lb.fulcrum.breaker_state"
	// LabelProbeResult is one of healthy, unhealthy, timeout, error.
	LabelProbeResult = "grpc.lb.fulcrum.probe_result"
	// LabelLocality is local (the client's zone, localZone) or remote.
	LabelLocality = "grpc.lb.fulcrum.locality"
)

// probeBounds are the probe duration buckets, in seconds: 1ms to 10s
// (probe timeouts are at most the probe interval).
var probeBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// The metrics. Resolver metrics are recorded by the fulcrum:// resolver;
// the others by the balancer and the HTTP transport, except Retries and
// RetryBudgetRejections, which only the HTTP transport records, and the
// hedging counters, recorded only where hedging is on.
var (
	Endpoints = &Metric{
		Name: "grpc.lb.fulcrum.endpoints", Kind: Gauge, Unit: "{endpoint}",
		Description: "EXPERIMENTAL. Endpoints of the channel by state at its last decision. usable includes slow_start (usable, weight held back by slow start) and endpoints kept in rotation by maxEjectionPercent.",
		Labels:      []string{LabelTarget, LabelEndpointState},
	}
	EjectionsActive = &Metric{
		Name: "grpc.lb.fulcrum.ejections_active", Kind: Gauge, Unit: "{endpoint}",
		Description: "EXPERIMENTAL. Endpoints currently ejected by their circuit breaker (open, within maxEjectionPercent).",
		Labels:      []string{LabelTarget},
	}
	BreakerTransitions = &Metric{
		Name: "grpc.lb.fulcrum.breaker_transitions", Kind: Counter, Unit: "{transition}",
		Description: "EXPERIMENTAL. Circuit breaker state changes, by the state entered.",
		Labels:      []string{LabelTarget, LabelBreakerState},
	}
	PanicEntered = &Metric{
		Name: "grpc.lb.fulcrum.panic_mode_entered", Kind: Counter, Unit: "{event}",
		Description: "EXPERIMENTAL. Times the channel entered panic mode (usable share below panicThresholdPercent: picking among all connected endpoints).",
		Labels:      []string{LabelTarget},
	}
	PanicActive = &Metric{
		Name: "grpc.lb.fulcrum.panic_mode_active", Kind: Gauge, Unit: "1",
		Description: "EXPERIMENTAL. 1 while the channel is in panic mode, else 0.",
		Labels:      []string{LabelTarget},
	}
	ZonePicks = &Metric{
		Name: "grpc.lb.fulcrum.zone_picks", Kind: Counter, Unit: "{pick}",
		Description: "EXPERIMENTAL. Requests sent to the client's zone (local) and to other zones (remote), with localZone set. Added at each decision and each collection.",
		Labels:      []string{LabelTarget, LabelLocality},
	}
	ZoneSpill = &Metric{
		Name: "grpc.lb.fulcrum.zone_spill", Kind: Gauge, Unit: "%",
		Description: "EXPERIMENTAL. Share of requests the local zone's health sends to other zones at the last decision (100: nothing usable in it), before the load rule; reported with localZone set, 0 in panic mode.",
		Labels:      []string{LabelTarget},
	}
	NoUsableEndpoint = &Metric{
		Name: "grpc.lb.fulcrum.no_usable_endpoint_picks", Kind: Counter, Unit: "{pick}",
		Description: "EXPERIMENTAL. Picks failed because no endpoint was usable (all unhealthy, ejected or disconnected with panic mode off, or every candidate's breaker refused). A wait-for-ready RPC counts once per picker it waits through.",
		Labels:      []string{LabelTarget},
	}
	Probes = &Metric{
		Name: "grpc.lb.fulcrum.probes", Kind: Counter, Unit: "{probe}",
		Description: "EXPERIMENTAL. Active health probes completed, by result.",
		Labels:      []string{LabelTarget, LabelProbeResult},
	}
	ProbeDuration = &Metric{
		Name: "grpc.lb.fulcrum.probe_duration", Kind: Histogram, Unit: "s",
		Description: "EXPERIMENTAL. Duration of active health probes.",
		Labels:      []string{LabelTarget}, Bounds: probeBounds,
	}
	Retries = &Metric{
		Name: "grpc.lb.fulcrum.retries", Kind: Counter, Unit: "{attempt}",
		Description: "EXPERIMENTAL. Attempts after the first of a request, sent to another endpoint (HTTP transport; gRPC retries are grpc-go's).",
		Labels:      []string{LabelTarget},
	}
	RetryBudgetRejections = &Metric{
		Name: "grpc.lb.fulcrum.retry_budget_rejections", Kind: Counter, Unit: "{attempt}",
		Description: "EXPERIMENTAL. Retries that were due but refused by the retry budget (HTTP transport).",
		Labels:      []string{LabelTarget},
	}
	HedgesSent = &Metric{
		Name: "grpc.lb.fulcrum.hedges_sent", Kind: Counter, Unit: "{attempt}",
		Description: "EXPERIMENTAL. Hedged attempts sent: attempts after the first of a hedged call (fulcrum.WithHedging, fulcrumhttp's hedging).",
		Labels:      []string{LabelTarget},
	}
	HedgesWon = &Metric{
		Name: "grpc.lb.fulcrum.hedges_won", Kind: Counter, Unit: "{attempt}",
		Description: "EXPERIMENTAL. Hedged attempts whose result was the call's (the first attempt was slower or failed).",
		Labels:      []string{LabelTarget},
	}
	HedgeBudgetRejections = &Metric{
		Name: "grpc.lb.fulcrum.hedge_budget_rejections", Kind: Counter, Unit: "{attempt}",
		Description: "EXPERIMENTAL. Hedged attempts that were due but refused by the hedging budget (maxExtraLoadPercent, and for HTTP the host's retry budget).",
		Labels:      []string{LabelTarget},
	}
	ResolverUpdates = &Metric{
		Name: "grpc.lb.fulcrum.resolver.updates", Kind: Counter, Unit: "{update}",
		Description: "EXPERIMENTAL. Endpoint sets the fulcrum:// resolver pushed to the channel (changes only).",
		Labels:      []string{LabelTarget},
	}
	ResolverErrors = &Metric{
		Name: "grpc.lb.fulcrum.resolver.source_errors", Kind: Counter, Unit: "{error}",
		Description: "EXPERIMENTAL. Errors (and suspicious empty sets) reported by the resolver's source.",
		Labels:      []string{LabelTarget},
	}
	ResolverLKG = &Metric{
		Name: "grpc.lb.fulcrum.resolver.last_known_good", Kind: Gauge, Unit: "1",
		Description: "EXPERIMENTAL. 1 while the resolver serves its last known good set because the source fails, else 0.",
		Labels:      []string{LabelTarget},
	}
	ResolverLKGAge = &Metric{
		Name: "grpc.lb.fulcrum.resolver.last_known_good_age", Kind: Gauge, Unit: "s",
		Description: "EXPERIMENTAL. While the last known good set is in use, seconds since the source last confirmed it; else 0.",
		Labels:      []string{LabelTarget},
	}
	ResolverEmptyHeld = &Metric{
		Name: "grpc.lb.fulcrum.resolver.empty_held", Kind: Gauge, Unit: "1",
		Description: "EXPERIMENTAL. 1 while an empty answer from a registry source is held off (the previous endpoints stay in the channel until it has lasted emptyGrace), else 0.",
		Labels:      []string{LabelTarget},
	}
	ResolverEmptyHolds = &Metric{
		Name: "grpc.lb.fulcrum.resolver.empty_holds", Kind: Counter, Unit: "{event}",
		Description: "EXPERIMENTAL. Empty answers from a registry source that started a hold-off (counts the short ones a gauge scrape misses).",
		Labels:      []string{LabelTarget},
	}
)

// All returns every metric, balancer ones first.
func All() []*Metric {
	return []*Metric{Endpoints, EjectionsActive, BreakerTransitions, PanicEntered, PanicActive, ZonePicks, ZoneSpill,
		NoUsableEndpoint, Probes, ProbeDuration, Retries, RetryBudgetRejections, HedgesSent, HedgesWon, HedgeBudgetRejections, ResolverUpdates, ResolverErrors, ResolverLKG, ResolverLKGAge,
		ResolverEmptyHeld, ResolverEmptyHolds}
}

// Names returns the names of every metric, to enable them all in grpc-go's
// OpenTelemetry plugin:
//
//	opentelemetry.MetricsOptions{Metrics: stats.NewMetricSet(metrics.Names()...)}
func Names() []string {
	var names []string
	for _, m := range All() {
		names = append(names, m.Name)
	}
	return names
}

// Recorder records metrics for one channel or host. Implementations must be
// safe for concurrent use and must not block. A transport implements it
// over its metrics system: GRPC over grpc-go's MetricsRecorder; the HTTP
// transport over an OpenTelemetry Meter (one instrument per Metric of All,
// Kind Counter: Int64Counter, Gauge: Int64ObservableGauge, Histogram:
// Float64Histogram with Bounds).
type Recorder interface {
	// Add adds n to a Counter.
	Add(m *Metric, n int64, labels ...string)
	// Record records one value of a Histogram.
	Record(m *Metric, v float64, labels ...string)
	// RegisterGauges has report called at every collection of the gauges;
	// report sets their values with set. unregister (idempotent) stops
	// the calls: the gauges of a closed channel disappear.
	RegisterGauges(report func(set func(m *Metric, v int64, labels ...string)), gauges ...*Metric) (unregister func())
}

// Nop is a Recorder that records nothing.
var Nop Recorder = nop{}

type nop struct{}

func (nop) Add(*Metric, int64, ...string)      {}
func (nop) Record(*Metric, float64, ...string) {}
func (nop) RegisterGauges(func(func(*Metric, int64, ...string)), ...*Metric) func() {
	return func() {}
}
