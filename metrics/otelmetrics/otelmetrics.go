// Package otelmetrics records Fulcrum's metrics (metrics.All) through an
// OpenTelemetry MeterProvider, for the HTTP transport:
//
//	t, err := fulcrumhttp.NewTransport(hosts, fulcrumhttp.WithMetrics(otelmetrics.NewRecorder(provider)))
//
// The names, units, labels and meanings are those the gRPC policy records
// through grpc-go's OpenTelemetry plugin. It is a module of its own so that
// Fulcrum's core depends on grpc-go only.
package otelmetrics

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/fulcrum-lb/fulcrum/metrics"
)

// ScopeName is the instrumentation scope of the meter.
const ScopeName = "github.com/fulcrum-lb/fulcrum"

// NewRecorder returns a metrics.Recorder creating one instrument per metric
// of metrics.All on a meter of mp: Counter as Int64Counter, Gauge as
// Int64ObservableGauge (read by a callback at each collection), Histogram
// as Float64Histogram with the metric's bucket boundaries. A nil mp records
// nothing. An instrument the provider refuses records nothing; the others
// work.
func NewRecorder(mp metric.MeterProvider) metrics.Recorder {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	r := &recorder{
		meter:      mp.Meter(ScopeName),
		counters:   map[*metrics.Metric]metric.Int64Counter{},
		gauges:     map[*metrics.Metric]metric.Int64ObservableGauge{},
		histograms: map[*metrics.Metric]metric.Float64Histogram{},
	}
	for _, m := range metrics.All() {
		desc, unit := metric.WithDescription(m.Description), metric.WithUnit(m.Unit)
		switch m.Kind {
		case metrics.Counter:
			if c, err := r.meter.Int64Counter(m.Name, desc, unit); err == nil {
				r.counters[m] = c
			}
		case metrics.Gauge:
			if g, err := r.meter.Int64ObservableGauge(m.Name, desc, unit); err == nil {
				r.gauges[m] = g
			}
		case metrics.Histogram:
			if h, err := r.meter.Float64Histogram(m.Name, desc, unit, metric.WithExplicitBucketBoundaries(m.Bounds...)); err == nil {
				r.histograms[m] = h
			}
		}
	}
	return r
}

type recorder struct {
	// Read-only after NewRecorder.
	meter      metric.Meter
	counters   map[*metrics.Metric]metric.Int64Counter
	gauges     map[*metrics.Metric]metric.Int64ObservableGauge
	histograms map[*metrics.Metric]metric.Float64Histogram
}

// attrs pairs m's label keys with values, in order.
func attrs(m *metrics.Metric, values []string) metric.MeasurementOption {
	kv := make([]attribute.KeyValue, 0, len(m.Labels))
	for i, k := range m.Labels {
		if i >= len(values) {
			break
		}
		kv = append(kv, attribute.String(k, values[i]))
	}
	return metric.WithAttributes(kv...)
}

func (r *recorder) Add(m *metrics.Metric, n int64, labels ...string) {
	if c := r.counters[m]; c != nil {
		c.Add(context.Background(), n, attrs(m, labels))
	}
}

func (r *recorder) Record(m *metrics.Metric, v float64, labels ...string) {
	if h := r.histograms[m]; h != nil {
		h.Record(context.Background(), v, attrs(m, labels))
	}
}

func (r *recorder) RegisterGauges(report func(set func(m *metrics.Metric, v int64, labels ...string)), ms ...*metrics.Metric) func() {
	var insts []metric.Observable
	for _, m := range ms {
		if g := r.gauges[m]; g != nil {
			insts = append(insts, g)
		}
	}
	if len(insts) == 0 {
		return func() {}
	}
	reg, err := r.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		report(func(m *metrics.Metric, v int64, labels ...string) {
			if g := r.gauges[m]; g != nil {
				o.ObserveInt64(g, v, attrs(m, labels))
			}
		})
		return nil
	}, insts...)
	if err != nil {
		return func() {}
	}
	return sync.OnceFunc(func() { reg.Unregister() })
}
