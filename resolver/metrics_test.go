package resolver

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// metricsCC accepts every update.
type metricsCC struct{ resolver.ClientConn }

func (metricsCC) UpdateState(resolver.State) error { return nil }
func (metricsCC) ReportError(error)                {}

// TestResolverMetrics: a changed set counts as an update, an identical one
// does not; a source error while serving counts as an error and turns the
// last-known-good gauge on, its age counting from the source's last good
// report; a good report turns it off; Close unregisters the gauges.
func TestResolverMetrics(t *testing.T) {
	const target = "fulcrum://test/svc"
	clk := newFakeClock() // no timers: the test uses no lkgTTL
	mr := testutil.NewMetricsRecorder()
	r := newFulcrumResolver(target, targetConfig{}, metricsCC{}, clk)
	r.initMetrics(mr, target)
	k := func(m *metrics.Metric) string { return m.Name + "{" + target + "}" }
	set := func(addrs ...string) Update { return Update{Endpoints: []Endpoint{{Addresses: addrs}}} }

	r.handle(set("10.0.0.1:1"))
	r.handle(set("10.0.0.1:1"))
	if got := mr.Count(metrics.ResolverUpdates.Name, target); got != 1 {
		t.Errorf("updates after one set reported twice = %d, want 1", got)
	}
	clk.Advance(10 * time.Second)
	r.handle(set("10.0.0.1:1")) // confirms the set at +10s
	clk.Advance(5 * time.Second)
	r.handle(Update{Err: errors.New("registry down")})
	clk.Advance(20 * time.Second)
	g := mr.Gauges()
	if g[k(metrics.ResolverLKG)] != 1 || g[k(metrics.ResolverLKGAge)] != 25 {
		t.Errorf("while failing: last_known_good = %d, age = %ds; want 1, 25s (since the last good report)", g[k(metrics.ResolverLKG)], g[k(metrics.ResolverLKGAge)])
	}
	if got := mr.Count(metrics.ResolverErrors.Name, target); got != 1 {
		t.Errorf("source errors = %d, want 1", got)
	}
	r.handle(set("10.0.0.1:1", "10.0.0.2:1"))
	g = mr.Gauges()
	if g[k(metrics.ResolverLKG)] != 0 || g[k(metrics.ResolverLKGAge)] != 0 {
		t.Errorf("after recovery: last_known_good = %d, age = %d; want 0, 0", g[k(metrics.ResolverLKG)], g[k(metrics.ResolverLKGAge)])
	}
	if got := mr.Count(metrics.ResolverUpdates.Name, target); got != 2 {
		t.Errorf("updates after a changed set = %d, want 2", got)
	}
	r.metrics.close()
	if n := mr.Reporters(); n != 0 {
		t.Errorf("%d gauge reporters registered after close, want 0", n)
	}
}
