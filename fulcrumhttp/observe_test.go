package fulcrumhttp_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/metrics"
	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
)

// fakeRecorder is a metrics.Recorder keeping counter sums, histogram
// counts and the registered gauge callbacks, by metric name and labels.
type fakeRecorder struct {
	mu      sync.Mutex
	sums    map[string]int64
	reports map[int]func(func(*metrics.Metric, int64, ...string))
	nextID  int
}

func newFakeRecorder() *fakeRecorder {
	return &fakeRecorder{sums: map[string]int64{}, reports: map[int]func(func(*metrics.Metric, int64, ...string)){}}
}

func key(m *metrics.Metric, labels []string) string {
	return m.Name + "{" + strings.Join(labels, ",") + "}"
}

func (r *fakeRecorder) Add(m *metrics.Metric, n int64, labels ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sums[key(m, labels)] += n
}

func (r *fakeRecorder) Record(m *metrics.Metric, _ float64, labels ...string) {
	r.Add(m, 1, labels...)
}

func (r *fakeRecorder) RegisterGauges(report func(func(*metrics.Metric, int64, ...string)), _ ...*metrics.Metric) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	id := r.nextID
	r.reports[id] = report
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.reports, id)
	}
}

// sum returns a counter's sum or a histogram's count.
func (r *fakeRecorder) sum(m *metrics.Metric, labels ...string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sums[key(m, labels)]
}

// gauges collects every registered gauge.
func (r *fakeRecorder) gauges() map[string]int64 {
	r.mu.Lock()
	var reports []func(func(*metrics.Metric, int64, ...string))
	for _, f := range r.reports {
		reports = append(reports, f)
	}
	r.mu.Unlock()
	out := map[string]int64{}
	for _, f := range reports {
		f(func(m *metrics.Metric, v int64, labels ...string) { out[key(m, labels)] = v })
	}
	return out
}

func TestWithMetrics_Nil(t *testing.T) {
	_, err := fulcrumhttp.NewTransport(map[string]string{"svc": "fulcrum://static/127.0.0.1:1"}, fulcrumhttp.WithMetrics(nil))
	want := "fulcrumhttp: WithMetrics: nil, must be a metrics.Recorder"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestMetrics_PanicProbesNoUsable: every endpoint fails its probes. With
// panic mode on, the host enters it once (counter 1, gauge 1, 3 unhealthy)
// and every probe is counted failed with its duration; with panic mode
// off, the failed request counts one no-usable-endpoint pick.
func TestMetrics_PanicProbesNoUsable(t *testing.T) {
	bs := newBackends(t, 3)
	for _, b := range bs {
		b.health.Store(http.StatusInternalServerError)
	}
	allUnhealthy := func(tr *fulcrumhttp.Transport) func() bool {
		return func() bool {
			es := tr.Stats().Endpoints
			if len(es) != len(bs) {
				return false // not resolved yet
			}
			for _, e := range es {
				if e.Healthy {
					return false
				}
			}
			return true
		}
	}

	rec := newFakeRecorder()
	tr := newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{`+fastProbe+`}`, fulcrumhttp.WithMetrics(rec))
	waitFor(t, "all endpoints unhealthy", allUnhealthy(tr))
	if code, _ := mustGet(t, &http.Client{Transport: tr}, "http://svc/"); code != http.StatusOK {
		t.Fatalf("panic mode: status %d, want 200", code)
	}
	if n := rec.sum(metrics.PanicEntered, "svc"); n != 1 {
		t.Errorf("panic_mode_entered = %d, want 1", n)
	}
	// An endpoint never proven healthy may still count as warming rather
	// than unhealthy, depending on probe timing: none is usable either way.
	g := rec.gauges()
	label := func(state string) int64 { return g[key(metrics.Endpoints, []string{"svc", state})] }
	if g[key(metrics.PanicActive, []string{"svc"})] != 1 || label("usable") != 0 || label("unhealthy")+label("warming") != 3 {
		t.Errorf("gauges %v, want panic_mode_active 1, 0 usable and 3 unhealthy or warming", g)
	}
	tr.Close() // no more probes: the counts below are final
	// The 15ms probe timeout may expire on a busy machine: a failed probe
	// is unhealthy (the 500) or a timeout.
	unhealthy, timeout := rec.sum(metrics.Probes, "svc", "unhealthy"), rec.sum(metrics.Probes, "svc", "timeout")
	healthy, errored := rec.sum(metrics.Probes, "svc", "healthy"), rec.sum(metrics.Probes, "svc", "error")
	if unhealthy == 0 || unhealthy+timeout < 3 || healthy+errored != 0 || rec.sum(metrics.ProbeDuration, "svc") != unhealthy+timeout {
		t.Errorf("probes: %d unhealthy, %d timeout, %d healthy, %d error, %d durations; want >= 1 unhealthy, >= 3 failed, 0 healthy or error, one duration each",
			unhealthy, timeout, healthy, errored, rec.sum(metrics.ProbeDuration, "svc"))
	}
	if n := rec.sum(metrics.NoUsableEndpoint, "svc"); n != 0 {
		t.Errorf("no_usable_endpoint_picks = %d in panic mode, want 0", n)
	}

	off := newFakeRecorder()
	tr = newTransport(t, map[string]string{"svc": staticTarget(bs)}, `{"panicThresholdPercent":0,`+fastProbe+`}`, fulcrumhttp.WithMetrics(off))
	waitFor(t, "all endpoints unhealthy", allUnhealthy(tr))
	_, _, err := do(t, &http.Client{Transport: tr}, http.MethodGet, "http://svc/", nil, "")
	if !errors.Is(err, fulcrumhttp.ErrNoUsableEndpoint) {
		t.Fatalf("panic mode off: err = %v, want ErrNoUsableEndpoint", err)
	}
	if n := off.sum(metrics.NoUsableEndpoint, "svc"); n != 1 {
		t.Errorf("no_usable_endpoint_picks = %d, want 1", n)
	}
	if n := off.sum(metrics.PanicEntered, "svc"); n != 0 {
		t.Errorf("panic_mode_entered = %d with panic mode off, want 0", n)
	}
}

func httpEntries(hosts ...string) map[string]fulcrumz.Channel {
	out := map[string]fulcrumz.Channel{}
	for _, ch := range fulcrumz.Snapshot() {
		for _, h := range hosts {
			if ch.Transport == "http" && ch.Target == h {
				out[h] = ch
			}
		}
	}
	return out
}

// TestFulcrumz_ListsHosts: without WithMetrics every host is still in
// fulcrumz with its endpoints and config, until Close; a NewTransport that
// fails leaves no entry behind.
func TestFulcrumz_ListsHosts(t *testing.T) {
	bs := newBackends(t, 2)
	tr := newTransport(t, map[string]string{"zsvc-a": staticTarget(bs[:1]), "zsvc-b": staticTarget(bs)}, `{"retry":{"maxAttempts":3}}`)
	c := &http.Client{Transport: tr}
	mustGet(t, c, "http://zsvc-a/") // both resolved and decided
	mustGet(t, c, "http://zsvc-b/")
	es := httpEntries("zsvc-a", "zsvc-b")
	if a, b := es["zsvc-a"], es["zsvc-b"]; len(a.Endpoints) != 1 || len(b.Endpoints) != 2 || b.Counts.Usable != 2 {
		t.Errorf("snapshot: zsvc-a %d endpoints, zsvc-b %d endpoints (%d usable); want 1, 2 (2)", len(a.Endpoints), len(b.Endpoints), b.Counts.Usable)
	}
	// The config in force is HTTP's: its own fields, not gRPC's.
	cfg := string(es["zsvc-b"].Config)
	for _, want := range []string{`"maxAttempts":3`, `"failureStatuses":[502,503,504]`, `"path":""`, `"enabled":false`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("snapshot config %s, want it to contain %s", cfg, want)
		}
	}
	if strings.Contains(cfg, "failureCodes") || strings.Contains(cfg, "unimplementedIsHealthy") {
		t.Errorf("snapshot config %s has gRPC-only fields", cfg)
	}
	tr.Close()
	if es := httpEntries("zsvc-a", "zsvc-b"); len(es) != 0 {
		t.Errorf("after Close the snapshot still lists %d of the hosts", len(es))
	}

	_, err := fulcrumhttp.NewTransport(map[string]string{"zsvc-c": staticTarget(bs), "zsvc-d": "fulcrum://nosuchsource/x"})
	if err == nil {
		t.Fatal("NewTransport with an unknown source: no error")
	}
	if es := httpEntries("zsvc-c", "zsvc-d"); len(es) != 0 {
		t.Errorf("a failed NewTransport left %d hosts in the snapshot", len(es))
	}
}

// TestMetrics_EmptySetZeroesGauges: when the target's source says
// (authoritatively) that it has no instances any more, the endpoint gauges
// report 0, not the counts of the last non-empty set.
func TestMetrics_EmptySetZeroesGauges(t *testing.T) {
	bs := newBackends(t, 2)
	src, target := newPushSource()
	rec := newFakeRecorder()
	tr := newTransport(t, map[string]string{"svc": target}, `{}`, fulcrumhttp.WithMetrics(rec))
	src.push(t, bs)
	usable := key(metrics.Endpoints, []string{"svc", "usable"})
	waitFor(t, "2 usable endpoints", func() bool { return rec.gauges()[usable] == 2 })
	src.mu.Lock()
	report := src.report
	src.mu.Unlock()
	report(fresolver.Update{Authoritative: true})
	waitFor(t, "0 usable endpoints after the authoritative empty set", func() bool {
		return len(tr.Stats().Endpoints) == 0 && rec.gauges()[usable] == 0
	})
}
