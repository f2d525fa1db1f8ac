package metrics_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
	estats "google.golang.org/grpc/experimental/stats"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRegistered: every metric is in grpc-go's registry with its unit,
// labels and bounds, off by default.
func TestRegistered(t *testing.T) {
	for _, m := range metrics.All() {
		d := estats.DescriptorForMetric(m.Name)
		if d == nil {
			t.Errorf("%s: not registered with grpc-go", m.Name)
			continue
		}
		if d.Default || d.Unit != m.Unit || strings.Join(d.Labels, ",") != strings.Join(m.Labels, ",") || len(d.Bounds) != len(m.Bounds) {
			t.Errorf("%s: registered %+v, want unit %q, labels %v, bounds %v, off by default", m.Name, d, m.Unit, m.Labels, m.Bounds)
		}
	}
}

// TestREADMETable: README's metrics table lists every metric with its
// kind, unit and labels, and nothing else.
func TestREADMETable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(grpc\\.lb\\.fulcrum\\.[^`]+)` \\| (\\w+) \\| `([^`]+)` \\| ([^|]+) \\|")
	rows := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		rows[m[1]] = m[2:]
	}
	for _, m := range metrics.All() {
		r, ok := rows[m.Name]
		if !ok {
			t.Errorf("README has no row for %s", m.Name)
			continue
		}
		delete(rows, m.Name)
		labels := "`" + strings.Join(m.Labels, "`, `") + "`"
		if r[0] != m.Kind.String() || r[1] != m.Unit || strings.TrimSpace(r[2]) != labels {
			t.Errorf("README row of %s: kind %s, unit %s, labels %s; want %s, %s, %s", m.Name, r[0], r[1], r[2], m.Kind, m.Unit, labels)
		}
	}
	for name := range rows {
		t.Errorf("README lists %s, which is not a metric", name)
	}
}

// TestChannel_RecordsThroughGRPC: counters and histograms reach grpc-go's
// MetricsRecorder with the channel's target; panic mode counts once per
// entry; the gauges report the engine's counts until Close.
func TestChannel_RecordsThroughGRPC(t *testing.T) {
	mr := testutil.NewMetricsRecorder()
	counts := endpointset.Counts{Total: 5, Usable: 2, Ramping: 1, Ejected: 2, Unhealthy: 1}
	ch := metrics.NewChannel(metrics.GRPC(mr), "t", func() (endpointset.Counts, bool) { return counts, true }, nil)
	if g := mr.Gauges()[metrics.PanicActive.Name+"{t}"]; g != 0 {
		t.Errorf("panic_mode_active = %d before any decision was recorded, want 0", g)
	}

	for _, p := range []bool{false, true, true, false, true} {
		ch.Decided(&endpointset.Decision{Panic: p})
	}
	if got := mr.Count(metrics.PanicEntered.Name, "t"); got != 2 {
		t.Errorf("panic_mode_entered = %d after off, on, on, off, on; want 2", got)
	}
	ch.BreakerChanged("a", breaker.Closed, breaker.Open)
	ch.BreakerChanged("a", breaker.Open, breaker.HalfOpen)
	ch.BreakerChanged("a", breaker.HalfOpen, breaker.Open)
	if o, h := mr.Count(metrics.BreakerTransitions.Name, "t", "open"), mr.Count(metrics.BreakerTransitions.Name, "t", "half_open"); o != 2 || h != 1 {
		t.Errorf("breaker_transitions open %d, half_open %d; want 2, 1", o, h)
	}
	ch.Probe("timeout", 0)
	if n, s := mr.Count(metrics.Probes.Name, "t", "timeout"), mr.Samples(metrics.ProbeDuration.Name, "t"); n != 1 || s != 1 {
		t.Errorf("probes{timeout} %d, probe_duration samples %d; want 1, 1", n, s)
	}
	g := mr.Gauges()
	want := map[string]int64{
		"usable": 2, "slow_start": 1, "connecting": 0, "disconnected": 0, "warming": 0, "unhealthy": 1, "ejected": 2,
	}
	for _, s := range metrics.StateLabels() {
		if got := g[metrics.Endpoints.Name+"{t,"+s+"}"]; got != want[s] {
			t.Errorf("endpoints{%s} = %d, want %d", s, got, want[s])
		}
	}
	if g[metrics.PanicActive.Name+"{t}"] != 1 || g[metrics.EjectionsActive.Name+"{t}"] != 2 {
		t.Errorf("gauges %v: want panic_mode_active 1, ejections_active 2", g)
	}
	// The gauge follows the recorded decisions, as the counter does: a
	// collection never sees panic mode on with its entry uncounted.
	ch.Decided(&endpointset.Decision{Panic: false})
	if g := mr.Gauges()[metrics.PanicActive.Name+"{t}"]; g != 0 {
		t.Errorf("panic_mode_active = %d after a decision out of panic mode, want 0", g)
	}
	ch.Close()
	ch.Close()
	if n := mr.Reporters(); n != 0 {
		t.Errorf("%d reporters after Close, want 0", n)
	}
}

// TestChannel_ZoneMetrics: with a local zone, the picks by locality are
// added as they grow (never twice) and the spill gauge follows the last
// decision; zone-unaware, neither is reported.
func TestChannel_ZoneMetrics(t *testing.T) {
	mr := testutil.NewMetricsRecorder()
	z := endpointset.ZoneReport{LocalZone: "a", Split: endpointset.ZoneSplit{Aware: true, Local: 2, Spill: 0.533}, LocalPicks: 90, RemotePicks: 10}
	counts := func() (endpointset.Counts, bool) { return endpointset.Counts{Total: 3}, true }
	ch := metrics.NewChannel(metrics.GRPC(mr), "t", counts, func() endpointset.ZoneReport { return z })
	defer ch.Close()
	ch.Decided(&endpointset.Decision{})
	if l, r := mr.Count(metrics.ZonePicks.Name, "t", "local"), mr.Count(metrics.ZonePicks.Name, "t", "remote"); l != 90 || r != 10 {
		t.Errorf("zone_picks local %d, remote %d; want 90, 10", l, r)
	}
	z.LocalPicks, z.RemotePicks = 95, 40
	if g := mr.Gauges()[metrics.ZoneSpill.Name+"{t}"]; g != 53 {
		t.Errorf("zone_spill = %d, want 53", g)
	}
	if l, r := mr.Count(metrics.ZonePicks.Name, "t", "local"), mr.Count(metrics.ZonePicks.Name, "t", "remote"); l != 95 || r != 40 {
		t.Errorf("after a collection zone_picks local %d, remote %d; want 95, 40", l, r)
	}
	ch.Decided(&endpointset.Decision{})
	if l := mr.Count(metrics.ZonePicks.Name, "t", "local"); l != 95 {
		t.Errorf("zone_picks local %d after a decision without new picks, want 95", l)
	}

	mr2 := testutil.NewMetricsRecorder()
	ch2 := metrics.NewChannel(metrics.GRPC(mr2), "u", counts, func() endpointset.ZoneReport { return endpointset.ZoneReport{} })
	defer ch2.Close()
	ch2.Decided(&endpointset.Decision{})
	if _, ok := mr2.Gauges()[metrics.ZoneSpill.Name+"{u}"]; ok || mr2.Count(metrics.ZonePicks.Name, "u", "local") != 0 {
		t.Errorf("zone-unaware channel reports zone metrics: %v", mr2.Gauges())
	}
}
