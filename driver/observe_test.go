package driver

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// panicSet returns a Set (and its records) whose two endpoints are connected and failing
// their probes: every decision is in panic mode.
func panicSet(clk *clocktest.Fake) (*endpointset.Set, []*endpointset.Record) {
	s, recs := newSetRecords(clk, endpointset.Options{Probing: true}, "a", "b")
	for _, r := range recs {
		s.SetHealth(r, false, "NOT_SERVING")
	}
	return s, recs
}

// findChannel returns target's fulcrumz entry in a snapshot taken now.
func findChannel(target string) (fulcrumz.Channel, bool) {
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Target == target {
			return ch, true
		}
	}
	return fulcrumz.Channel{}, false
}

// gaugesOf returns the gauges a collection reports for target.
func gaugesOf(mr *testutil.MetricsRecorder, target string) map[string]int64 {
	g := map[string]int64{}
	for k, v := range mr.Gauges() {
		if strings.Contains(k, "{"+target) {
			g[k] = v
		}
	}
	return g
}

// TestObserver_RecordsDecisionsProbesAndSnapshot: the driver's decisions
// reach the metrics (panic mode counted once per entry, the gauges report
// the last decision's counts) and fulcrumz (with the configuration); a
// probe is counted, timed and shown as the endpoint's last probe; Close
// removes the gauges and the entry.
func TestObserver_RecordsDecisionsProbesAndSnapshot(t *testing.T) {
	target := "driver-test:" + t.Name()
	clk := clocktest.New()
	s, recs := panicSet(clk)
	mr := testutil.NewMetricsRecorder()
	cfg := map[string]any{"panicThresholdPercent": 50}
	obs := NewObserver(s, ObserverOptions{
		Transport: "http", Target: target, Recorder: metrics.GRPC(mr),
		Config: func() (any, time.Duration, bool) { return cfg, 0, true },
	})
	p := newRecPub()
	d := New(s, p, Options{Clock: clk, Observer: obs})
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	d.Request()
	waitFor(t, "the second decision", func() bool { return p.decisions() == 2 })
	d.Close()

	if n := mr.Count(metrics.PanicEntered.Name, target); n != 1 {
		t.Errorf("panic_mode_entered = %d after two decisions in panic mode, want 1", n)
	}
	g := gaugesOf(mr, target)
	if u, pa := g[metrics.Endpoints.Name+"{"+target+",unhealthy}"], g[metrics.PanicActive.Name+"{"+target+"}"]; u != 2 || pa != 1 {
		t.Errorf("gauges %v: want endpoints{unhealthy} 2, panic_mode_active 1", g)
	}

	rec := recs[1] // "b"
	at := clk.Now()
	obs.Probe(rec, probe.Probe{Outcome: probe.Unhealthy, Reason: "NOT_SERVING", At: at, Duration: 3 * time.Millisecond})
	if n, h := mr.Count(metrics.Probes.Name, target, "unhealthy"), mr.Samples(metrics.ProbeDuration.Name, target); n != 1 || h != 1 {
		t.Errorf("probes{unhealthy} %d, probe_duration samples %d; want 1, 1", n, h)
	}

	ch, ok := findChannel(target)
	if !ok {
		t.Fatal("no fulcrumz entry while the observer is open")
	}
	var gotCfg map[string]any
	if err := json.Unmarshal(ch.Config, &gotCfg); err != nil || gotCfg["panicThresholdPercent"] != float64(50) {
		t.Errorf("fulcrumz config %s (%v), want the Config callback's", ch.Config, err)
	}
	if ch.Transport != "http" || !ch.Panic || ch.Counts.Unhealthy != 2 || len(ch.Endpoints) != 2 {
		t.Errorf("fulcrumz entry %+v: want transport http, panic, 2 endpoints unhealthy", ch)
	} else if lp := ch.Endpoints[1].LastProbe; lp == nil || lp.Result != "unhealthy" || !lp.At.Equal(at) || ch.Endpoints[0].LastProbe != nil {
		t.Errorf("fulcrumz last probes a %+v, b %+v; want none for a, b's unhealthy probe at %v", ch.Endpoints[0].LastProbe, lp, at)
	}

	obs.Close()
	if _, ok := findChannel(target); ok {
		t.Error("fulcrumz entry still present after Close")
	}
	if g := gaugesOf(mr, target); len(g) != 0 {
		t.Errorf("gauges %v reported after Close, want none", g)
	}
	if n := mr.Reporters(); n != 0 {
		t.Errorf("%d gauge reporters registered after Close, want 0", n)
	}
}

// TestObserver_NotConfigured: while Config says ok false, the channel is
// neither in fulcrumz snapshots nor in the gauges; once configured, it is.
func TestObserver_NotConfigured(t *testing.T) {
	target := "driver-test:" + t.Name()
	clk := clocktest.New()
	s, _ := panicSet(clk)
	s.Decide()
	mr := testutil.NewMetricsRecorder()
	var configured atomic.Bool
	obs := NewObserver(s, ObserverOptions{
		Transport: "grpc", Target: target, Recorder: metrics.GRPC(mr),
		Config: func() (any, time.Duration, bool) { return struct{}{}, 0, configured.Load() },
	})
	defer obs.Close()
	if _, ok := findChannel(target); ok {
		t.Error("fulcrumz shows a channel not configured yet")
	}
	if g := gaugesOf(mr, target); len(g) != 0 {
		t.Errorf("gauges %v reported for a channel not configured yet, want none", g)
	}
	configured.Store(true)
	d := s.Decide()
	obs.decided(&d)
	if ch, ok := findChannel(target); !ok || ch.Transport != "grpc" {
		t.Errorf("fulcrumz entry %+v (present %v) once configured, want a grpc entry", ch, ok)
	}
	if g := gaugesOf(mr, target); g[metrics.PanicActive.Name+"{"+target+"}"] != 1 {
		t.Errorf("gauges %v once configured, want panic_mode_active 1", g)
	}
}

// TestObserver_NilRecorder: no Recorder records nothing and does not fail.
func TestObserver_NilRecorder(t *testing.T) {
	target := "driver-test:" + t.Name()
	clk := clocktest.New()
	s, recs := panicSet(clk)
	obs := NewObserver(s, ObserverOptions{
		Transport: "http", Target: target,
		Config: func() (any, time.Duration, bool) { return nil, 0, true },
	})
	p := newRecPub()
	d := New(s, p, Options{Clock: clk, Observer: obs})
	waitFor(t, "the first decision", func() bool { return p.decisions() == 1 })
	d.Close()
	obs.Probe(recs[0], probe.Probe{Outcome: probe.Healthy})
	obs.Metrics().NoUsableEndpoint()
	if _, ok := findChannel(target); !ok {
		t.Error("no fulcrumz entry without a recorder")
	}
	obs.Close()
}
