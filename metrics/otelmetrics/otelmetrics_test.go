package otelmetrics_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/metrics"
	"github.com/fulcrum-lb/fulcrum/metrics/otelmetrics"
)

const defaultTestTimeout = 10 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backend is a net/http server on 127.0.0.1 answering status to every
// request but its health probe (/healthz, always 200).
type backend struct {
	addr   string
	status atomic.Int64
	hits   atomic.Int64 // requests other than probes
}

func newBackend(t *testing.T, status int) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String()}
	b.status.Store(int64(status))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		b.hits.Add(1)
		w.WriteHeader(int(b.status.Load()))
	})}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return b
}

// collector reads the provider's metrics with a ManualReader.
type collector struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	rm     metricdata.ResourceMetrics
}

func (c *collector) collect() {
	c.t.Helper()
	if err := c.reader.Collect(context.Background(), &c.rm); err != nil {
		c.t.Fatal(err)
	}
}

// value returns the sum (counter), value (gauge) or count (histogram) of
// the data point of name whose attributes include want; ok false if none.
func (c *collector) value(name string, want ...attribute.KeyValue) (v int64, ok bool) {
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			if got, has := set.Value(kv.Key); !has || got != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range c.rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return p.Value, true
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return p.Value, true
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return int64(p.Count), true
					}
				}
			}
		}
	}
	return 0, false
}

func get(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func snapshotOf(host string) (fulcrumz.Channel, bool) {
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Transport == "http" && ch.Target == host {
			return ch, true
		}
	}
	return fulcrumz.Channel{}, false
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	target = attribute.String(metrics.LabelTarget, "svc")
	opened = attribute.String(metrics.LabelBreakerState, "open")
)

// TestHTTP_BreakerRetriesGaugesSnapshot sends GETs through fulcrumhttp to
// two real servers, one answering 503, recording through an OTel SDK
// MeterProvider:
//
//  1. every GET succeeds (the 503s are retried on the other server); the
//     breaker opens after exactly 3 failures: the transition counter says
//     1 open, the retries counter 3, equal to Stats().Retries;
//  2. each endpoint's one probe (interval 1h) is counted healthy, with its
//     duration in the histogram;
//  3. the state gauges equal fulcrumz.Snapshot()'s counts for the host
//     (1 usable, 1 ejected);
//  4. after Close the host's gauges and snapshot entry are gone.
func TestHTTP_BreakerRetriesGaugesSnapshot(t *testing.T) {
	bad, good := newBackend(t, http.StatusServiceUnavailable), newBackend(t, http.StatusOK)
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	c := &collector{t: t, reader: reader}

	tr, err := fulcrumhttp.NewTransport(map[string]string{"svc": "fulcrum://static/" + bad.addr + "," + good.addr},
		fulcrumhttp.WithConfig(`{"breaker":{"consecutiveFailures":3,"openDuration":"1m","maxOpenDuration":"1m"},
			"healthProbe":{"path":"/healthz","interval":"1h"},"retry":{"minRetriesPerSecond":100}}`),
		fulcrumhttp.WithMetrics(otelmetrics.NewRecorder(provider)))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}
	// Warmup holds each endpoint back until its first probe: wait for both,
	// so the first 503 has somewhere to be retried.
	waitFor(t, "both endpoints probed healthy", func() bool {
		ch, ok := snapshotOf("svc")
		return ok && ch.Counts.Usable == 2
	})

	for i := range 50 {
		if code := get(t, client, "http://svc/"); code != http.StatusOK {
			t.Fatalf("request %d: %d, want 200 (503s retried on the good server)", i, code)
		}
	}
	if n := bad.hits.Load(); n != 3 {
		t.Fatalf("failing server got %d requests, want 3 (breaker opens after 3)", n)
	}
	waitFor(t, "the snapshot to show the ejection", func() bool {
		ch, ok := snapshotOf("svc")
		return ok && ch.Counts.Ejected == 1
	})
	c.collect()

	// 1. Breaker transition and retries.
	if v, _ := c.value("grpc.lb.fulcrum.breaker_transitions", target, opened); v != 1 {
		t.Errorf("breaker_transitions{open} = %d, want 1", v)
	}
	if v, _ := c.value("grpc.lb.fulcrum.retries", target); v != 3 || uint64(v) != tr.Stats().Retries {
		t.Errorf("retries = %d, Stats().Retries = %d; want 3 each", v, tr.Stats().Retries)
	}
	// 2. Probes.
	if v, _ := c.value("grpc.lb.fulcrum.probes", target, attribute.String(metrics.LabelProbeResult, "healthy")); v != 2 {
		t.Errorf("probes{healthy} = %d, want 2 (one per endpoint)", v)
	}
	if v, _ := c.value("grpc.lb.fulcrum.probe_duration", target); v != 2 {
		t.Errorf("probe_duration count = %d, want 2", v)
	}

	// 3. Gauges against the snapshot.
	ch, ok := snapshotOf("svc")
	if !ok {
		t.Fatal("fulcrumz.Snapshot() has no http entry for svc")
	}
	want := map[string]int{
		"usable": ch.Counts.Usable, "slow_start": ch.Counts.SlowStart, "connecting": ch.Counts.Connecting,
		"disconnected": ch.Counts.Disconnected, "warming": ch.Counts.Warming,
		"unhealthy": ch.Counts.Unhealthy, "ejected": ch.Counts.Ejected,
	}
	if ch.Counts.Usable != 1 || ch.Counts.Ejected != 1 {
		t.Errorf("snapshot counts %+v, want 1 usable, 1 ejected", ch.Counts)
	}
	for _, state := range metrics.StateLabels() {
		v, ok := c.value("grpc.lb.fulcrum.endpoints", target, attribute.String(metrics.LabelEndpointState, state))
		if !ok || v != int64(want[state]) {
			t.Errorf("endpoints{%s} = %d (reported %v), snapshot says %d", state, v, ok, want[state])
		}
	}
	if v, _ := c.value("grpc.lb.fulcrum.ejections_active", target); v != int64(ch.Counts.Ejected) {
		t.Errorf("ejections_active = %d, snapshot says %d ejected", v, ch.Counts.Ejected)
	}
	if v, ok := c.value("grpc.lb.fulcrum.panic_mode_active", target); !ok || v != 0 || ch.Panic {
		t.Errorf("panic_mode_active = %d (reported %v), snapshot panic %v; want 0, false", v, ok, ch.Panic)
	}
	var addrs []string
	for _, ep := range ch.Endpoints {
		addrs = append(addrs, fmt.Sprintf("%s %s probe=%v", ep.Addresses[0], ep.State, ep.LastProbe != nil))
	}
	if len(ch.Endpoints) != 2 || ch.Endpoints[0].LastProbe == nil || ch.Endpoints[1].LastProbe == nil {
		t.Errorf("snapshot endpoints %s, want 2 with their last probe", strings.Join(addrs, "; "))
	}

	// 4. Close.
	tr.Close()
	if _, ok := snapshotOf("svc"); ok {
		t.Error("the snapshot still lists svc after Close")
	}
	c.collect()
	if _, ok := c.value("grpc.lb.fulcrum.endpoints", target); ok {
		t.Error("endpoints gauge still reported after Close")
	}
}

// TestHTTP_BudgetRejections: with a retry budget of zero every due retry
// is refused: the rejection counter equals Stats().RetriesDenied and the
// 503s reach the caller; no retry is counted.
func TestHTTP_BudgetRejections(t *testing.T) {
	bad, good := newBackend(t, http.StatusServiceUnavailable), newBackend(t, http.StatusOK)
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	c := &collector{t: t, reader: reader}

	tr, err := fulcrumhttp.NewTransport(map[string]string{"svc": "fulcrum://static/" + bad.addr + "," + good.addr},
		fulcrumhttp.WithConfig(`{"breaker":{"enabled":false},"retry":{"budgetPercent":0,"minRetriesPerSecond":0}}`),
		fulcrumhttp.WithMetrics(otelmetrics.NewRecorder(provider)))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}

	got503 := 0
	for i := 0; i < 200 && got503 < 5; i++ {
		if get(t, client, "http://svc/") == http.StatusServiceUnavailable {
			got503++
		}
	}
	if got503 < 5 {
		t.Fatalf("%d 503s in 200 requests, want 5 (the failing server gets about half)", got503)
	}
	c.collect()
	v, _ := c.value("grpc.lb.fulcrum.retry_budget_rejections", target)
	if v != int64(got503) || uint64(v) != tr.Stats().RetriesDenied {
		t.Errorf("retry_budget_rejections = %d, Stats().RetriesDenied = %d, 503s to the caller %d; want all equal", v, tr.Stats().RetriesDenied, got503)
	}
	if v, _ := c.value("grpc.lb.fulcrum.retries", target); v != 0 {
		t.Errorf("retries = %d, want 0", v)
	}
}

// TestNewRecorder_NilProvider records nothing and does not panic.
func TestNewRecorder_NilProvider(t *testing.T) {
	r := otelmetrics.NewRecorder(nil)
	r.Add(metrics.Retries, 1, "svc")
	r.Record(metrics.ProbeDuration, 0.1, "svc")
	r.RegisterGauges(func(func(*metrics.Metric, int64, ...string)) {}, metrics.Endpoints)()
}
