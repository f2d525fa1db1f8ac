package metricstest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/stats/opentelemetry"

	_ "github.com/fulcrum-lb/fulcrum" // registers weighted_least_request and fulcrum://
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

const defaultTestTimeout = 15 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestOTel_BreakerGaugesPanic runs a channel over four real backends with
// grpc-go's OpenTelemetry plugin and a ManualReader, every Fulcrum metric
// enabled by name:
//
//  1. one backend fails every RPC with UNAVAILABLE: the breaker counter
//     counts its trip, the ejected gauge says 1 and every state gauge
//     equals the snapshot's count; probes and resolver updates are counted;
//  2. two more fail: three of four are ejected (maxEjectionPercent 100), so
//     the usable share falls below 50 % and panic mode's counter and gauge
//     move, as does the snapshot;
//  3. after Close the channel's gauges and snapshot are gone.
func TestOTel_BreakerGaugesPanic(t *testing.T) {
	fleet, err := testutil.StartFleet(4, testutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	target := "fulcrum://static/" + strings.Join(fleet.Addrs(), ",")
	// openDuration outlasts the test, so ejections stay in force while
	// it looks at them.
	sc := `{"loadBalancingConfig":[{"weighted_least_request":{
		"maxEjectionPercent": 100, "slowStart": {"window": "0s"},
		"breaker": {"openDuration": "1m", "maxOpenDuration": "2m"},
		"healthProbe": {"interval": "100ms", "timeout": "100ms"}}}]}`
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
		opentelemetry.DialOption(opentelemetry.Options{MetricsOptions: opentelemetry.MetricsOptions{
			MeterProvider: provider,
			Metrics:       stats.NewMetricSet(metrics.Names()...),
		}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("first RPC: %v", err)
	}
	canonical := "fulcrum://static/" + strings.Join(fleet.Addrs(), ",")
	m := &collector{t: t, reader: reader, target: canonical}

	// 1. One backend fails every RPC.
	fleet[0].SetFailure(codes.Unavailable)
	m.sendUntil(ctx, client, "one endpoint ejected", func() bool { return m.gauge(metrics.Endpoints.Name, "ejected") == 1 })
	if got := m.counter(metrics.BreakerTransitions.Name, metrics.LabelBreakerState, "open"); got < 1 {
		t.Errorf("%s{open} = %d, want >= 1", metrics.BreakerTransitions.Name, got)
	}
	if got := m.gauge(metrics.EjectionsActive.Name, ""); got != 1 {
		t.Errorf("%s = %d, want 1", metrics.EjectionsActive.Name, got)
	}
	ch := m.snapshot()
	m.gaugesMatch(ch)
	if ch.Panic {
		t.Errorf("snapshot: panic mode with one of four endpoints ejected: %s", ch.PanicReason)
	}
	for _, e := range ch.Endpoints {
		failing := e.Addresses[0] == fleet[0].Addr
		if failing && (e.State != "ejected" || e.Breaker == nil || e.Breaker.State != "open" || e.Breaker.OpenUntil == nil) {
			t.Errorf("snapshot: failing backend %v: state %s, breaker %+v; want ejected, open until some time", e.Addresses, e.State, e.Breaker)
		}
		if !failing && e.State != "usable" {
			t.Errorf("snapshot: backend %v: state %s (%s), want usable", e.Addresses, e.State, e.Reason)
		}
		if e.LastProbe == nil || e.LastProbe.Result != "healthy" {
			t.Errorf("snapshot: backend %v: last probe %+v, want healthy", e.Addresses, e.LastProbe)
		}
	}
	if got := m.gauge(metrics.PanicActive.Name, ""); got != 0 {
		t.Errorf("%s = %d, want 0 with one of four endpoints ejected", metrics.PanicActive.Name, got)
	}
	if got := m.counter(metrics.Probes.Name, metrics.LabelProbeResult, "healthy"); got < 4 {
		t.Errorf("%s{healthy} = %d, want >= 4 (one first probe per backend)", metrics.Probes.Name, got)
	}
	if n, ok := m.histogramCount(metrics.ProbeDuration.Name); !ok || n < 4 {
		t.Errorf("%s: %d samples, want >= 4", metrics.ProbeDuration.Name, n)
	}
	if got := m.counter(metrics.ResolverUpdates.Name, "", ""); got != 1 {
		t.Errorf("%s = %d, want 1 (one static set)", metrics.ResolverUpdates.Name, got)
	}
	if got := m.gauge(metrics.ResolverLKG.Name, ""); got != 0 {
		t.Errorf("%s = %d, want 0 while the source is fine", metrics.ResolverLKG.Name, got)
	}

	// 2. Three of four fail: panic mode.
	fleet[1].SetFailure(codes.Unavailable)
	fleet[2].SetFailure(codes.Unavailable)
	m.sendUntil(ctx, client, "panic mode", func() bool { return m.gauge(metrics.PanicActive.Name, "") == 1 })
	if got := m.counter(metrics.PanicEntered.Name, "", ""); got != 1 {
		t.Errorf("%s = %d, want 1", metrics.PanicEntered.Name, got)
	}
	ch = m.snapshot()
	m.gaugesMatch(ch)
	if !ch.Panic || ch.PanicReason == "" {
		t.Errorf("snapshot: panic %t (%q), want panic mode with a reason", ch.Panic, ch.PanicReason)
	}
	if got := m.gauge(metrics.Endpoints.Name, "usable"); got != 1 {
		t.Errorf("%s{usable} = %d, want 1", metrics.Endpoints.Name, got)
	}

	// 3. Close: the channel's gauges and snapshot entry go.
	cc.Close()
	if _, ok := m.find(metrics.Endpoints.Name); ok {
		t.Errorf("%s still reported after Close", metrics.Endpoints.Name)
	}
	for _, c := range fulcrumz.Snapshot() {
		if c.Target == canonical {
			t.Errorf("snapshot still lists %s after Close", canonical)
		}
	}
}

// collector reads the ManualReader.
type collector struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	target string
}

func (c *collector) collect() metricdata.ResourceMetrics {
	c.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := c.reader.Collect(context.Background(), &rm); err != nil {
		c.t.Fatalf("Collect: %v", err)
	}
	return rm
}

func (c *collector) find(name string) (metricdata.Metrics, bool) {
	for _, sm := range c.collect().ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// counter sums the points of an int64 counter for this channel whose label
// key has value (every point if key is "").
func (c *collector) counter(name, key, value string) int64 {
	m, ok := c.find(name)
	if !ok {
		return 0
	}
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		c.t.Fatalf("%s: data %T, want an int64 sum", name, m.Data)
	}
	var n int64
	for _, p := range sum.DataPoints {
		if c.matches(p.Attributes, key, value) {
			n += p.Value
		}
	}
	return n
}

// gauge returns an int64 gauge of this channel, with endpoint state state
// if given; -1 when absent.
func (c *collector) gauge(name, state string) int64 {
	m, ok := c.find(name)
	if !ok {
		return -1
	}
	g, ok := m.Data.(metricdata.Gauge[int64])
	if !ok {
		c.t.Fatalf("%s: data %T, want an int64 gauge", name, m.Data)
	}
	key := ""
	if state != "" {
		key = metrics.LabelEndpointState
	}
	for _, p := range g.DataPoints {
		if c.matches(p.Attributes, key, state) {
			return p.Value
		}
	}
	return -1
}

func (c *collector) histogramCount(name string) (uint64, bool) {
	m, ok := c.find(name)
	if !ok {
		return 0, false
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		c.t.Fatalf("%s: data %T, want a float64 histogram", name, m.Data)
	}
	var n uint64
	for _, p := range h.DataPoints {
		n += p.Count
	}
	return n, true
}

func (c *collector) matches(set attribute.Set, key, want string) bool {
	t, ok := set.Value(metrics.LabelTarget)
	if !ok || t.AsString() != c.target {
		return false
	}
	if key == "" {
		return true
	}
	v, ok := set.Value(attribute.Key(key))
	return ok && v.AsString() == want
}

// snapshot returns this channel's entry of fulcrumz.Snapshot.
func (c *collector) snapshot() fulcrumz.Channel {
	c.t.Helper()
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Target == c.target {
			return ch
		}
	}
	c.t.Fatalf("snapshot has no channel %s", c.target)
	return fulcrumz.Channel{}
}

// gaugesMatch checks that every endpoints gauge equals the snapshot's
// count. Nothing changes state meanwhile (ejections last a minute, probes
// stay healthy), but a decision could land between the two reads: retry
// once.
func (c *collector) gaugesMatch(ch fulcrumz.Channel) {
	c.t.Helper()
	var diffs []string
	for attempt := 0; attempt < 2; attempt++ {
		diffs = diffs[:0]
		want := map[string]int{
			"usable": ch.Counts.Usable, "slow_start": ch.Counts.SlowStart, "connecting": ch.Counts.Connecting,
			"disconnected": ch.Counts.Disconnected, "warming": ch.Counts.Warming,
			"unhealthy": ch.Counts.Unhealthy, "ejected": ch.Counts.Ejected,
		}
		for _, s := range metrics.StateLabels() {
			if got := c.gauge(metrics.Endpoints.Name, s); got != int64(want[s]) {
				diffs = append(diffs, fmt.Sprintf("%s{%s} = %d, snapshot says %d", metrics.Endpoints.Name, s, got, want[s]))
			}
		}
		if got := c.gauge(metrics.EjectionsActive.Name, ""); got != int64(ch.Counts.Ejected) {
			diffs = append(diffs, fmt.Sprintf("%s = %d, snapshot says %d", metrics.EjectionsActive.Name, got, ch.Counts.Ejected))
		}
		if len(diffs) == 0 {
			return
		}
		ch = c.snapshot()
	}
	c.t.Errorf("gauges differ from the snapshot: %s", strings.Join(diffs, "; "))
}

// sendUntil sends RPCs (failures expected) until cond holds, or fails the
// test at ctx's deadline.
func (c *collector) sendUntil(ctx context.Context, client testgrpc.TestServiceClient, what string, cond func() bool) {
	c.t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		for i := 0; i < 20; i++ {
			client.EmptyCall(ctx, &testpb.Empty{})
		}
	}
}
