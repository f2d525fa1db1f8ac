package testutil

import (
	"context"
	"strings"
	"sync"

	estats "google.golang.org/grpc/experimental/stats"
	"google.golang.org/grpc/stats"
)

// MetricsRecorder is an in-memory grpc-go MetricsRecorder. Passed to a
// channel with grpc.WithStatsHandler it receives what balancers and
// resolvers record through their ClientConn (grpc-go gives every stats
// handler that implements estats.MetricsRecorder to them).
type MetricsRecorder struct {
	estats.UnimplementedMetricsRecorder

	mu        sync.Mutex
	counts    map[string]int64 // by name and labels
	histos    map[string]int   // samples by name and labels
	reporters map[int]estats.AsyncMetricReporter
	nextID    int
}

// NewMetricsRecorder returns an empty recorder.
func NewMetricsRecorder() *MetricsRecorder {
	return &MetricsRecorder{counts: map[string]int64{}, histos: map[string]int{}, reporters: map[int]estats.AsyncMetricReporter{}}
}

func key(name string, labels []string) string {
	return name + "{" + strings.Join(labels, ",") + "}"
}

// RecordInt64Count implements estats.MetricsRecorder.
func (r *MetricsRecorder) RecordInt64Count(h *estats.Int64CountHandle, n int64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[key(h.Descriptor().Name, labels)] += n
}

// RecordFloat64Histo implements estats.MetricsRecorder.
func (r *MetricsRecorder) RecordFloat64Histo(h *estats.Float64HistoHandle, _ float64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.histos[key(h.Descriptor().Name, labels)]++
}

// RegisterAsyncReporter implements estats.MetricsRecorder.
func (r *MetricsRecorder) RegisterAsyncReporter(rep estats.AsyncMetricReporter, _ ...estats.AsyncMetric) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	id := r.nextID
	r.reporters[id] = rep
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.reporters, id)
	}
}

// Count returns the sum recorded on counter name with exactly labels.
func (r *MetricsRecorder) Count(name string, labels ...string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key(name, labels)]
}

// Samples returns the number of values recorded on histogram name with
// exactly labels.
func (r *MetricsRecorder) Samples(name string, labels ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.histos[key(name, labels)]
}

// Reporters returns the number of registered async reporters.
func (r *MetricsRecorder) Reporters() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reporters)
}

// Gauges runs every registered async reporter (a collection) and returns
// the values reported, by name and labels ("name{l1,l2}").
func (r *MetricsRecorder) Gauges() map[string]int64 {
	r.mu.Lock()
	reps := make([]estats.AsyncMetricReporter, 0, len(r.reporters))
	for _, rep := range r.reporters {
		reps = append(reps, rep)
	}
	r.mu.Unlock()
	g := gaugeSink{}
	for _, rep := range reps {
		rep.Report(g)
	}
	return g
}

type gaugeSink map[string]int64

func (g gaugeSink) RecordInt64AsyncGauge(h *estats.Int64AsyncGaugeHandle, v int64, labels ...string) {
	g[key(h.Descriptor().Name, labels)] = v
}

// The stats.Handler methods do nothing: the recorder only needs to be a
// stats handler to reach the channel.

// TagRPC implements stats.Handler.
func (*MetricsRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler.
func (*MetricsRecorder) HandleRPC(context.Context, stats.RPCStats) {}

// TagConn implements stats.Handler.
func (*MetricsRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

// HandleConn implements stats.Handler.
func (*MetricsRecorder) HandleConn(context.Context, stats.ConnStats) {}
