package metrics

import (
	"sync"

	estats "google.golang.org/grpc/experimental/stats"
)

// The grpc-go handles of All, registered at init as grpc-go's registry
// requires; read-only afterwards.
var (
	counters   = map[*Metric]*estats.Int64CountHandle{}
	gauges     = map[*Metric]*estats.Int64AsyncGaugeHandle{}
	histograms = map[*Metric]*estats.Float64HistoHandle{}
)

func init() {
	for _, m := range All() {
		d := estats.MetricDescriptor{
			Name:        m.Name,
			Description: m.Description,
			Unit:        m.Unit,
			Labels:      m.Labels,
			Bounds:      m.Bounds,
			Default:     false, // opt-in, as grpc-go's LB policy metrics are
		}
		switch m.Kind {
		case Counter:
			counters[m] = estats.RegisterInt64Count(d)
		case Gauge:
			gauges[m] = estats.RegisterInt64AsyncGauge(d)
		case Histogram:
			histograms[m] = estats.RegisterFloat64Histo(d)
		}
	}
}

// GRPC returns a Recorder over a ClientConn's MetricsRecorder
// (balancer.ClientConn.MetricsRecorder, resolver.BuildOptions.MetricsRecorder).
// A nil mr records nothing.
func GRPC(mr estats.MetricsRecorder) Recorder {
	if mr == nil {
		return Nop
	}
	return grpcRecorder{mr}
}

type grpcRecorder struct{ mr estats.MetricsRecorder }

func (g grpcRecorder) Add(m *Metric, n int64, labels ...string) {
	if h := counters[m]; h != nil {
		h.Record(g.mr, n, labels...)
	}
}

func (g grpcRecorder) Record(m *Metric, v float64, labels ...string) {
	if h := histograms[m]; h != nil {
		h.Record(g.mr, v, labels...)
	}
}

func (g grpcRecorder) RegisterGauges(report func(set func(m *Metric, v int64, labels ...string)), ms ...*Metric) func() {
	var hs []estats.AsyncMetric
	for _, m := range ms {
		if h := gauges[m]; h != nil {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return func() {}
	}
	r := estats.AsyncMetricReporterFunc(func(ar estats.AsyncMetricsRecorder) error {
		report(func(m *Metric, v int64, labels ...string) {
			if h := gauges[m]; h != nil {
				h.Record(ar, v, labels...)
			}
		})
		return nil
	})
	return sync.OnceFunc(g.mr.RegisterAsyncReporter(r, hs...))
}
