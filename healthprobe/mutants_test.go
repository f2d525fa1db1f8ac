package healthprobe_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// The tests of this file and of mutants_loop_test.go were written against
// the mutants that survived `go run ./internal/cmd/mutate ./healthprobe`
// (docs/mutation.md): each pins a behaviour no earlier test checked.

// events records observer and onChange calls in the order they happen.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf(format, args...))
}

func (e *events) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	return got
}

// TestStartWithObserver_ReportsEveryProbe: the observer sees every
// completed probe, its outcome and reason, before the verdict it feeds
// reaches onChange; a listener started without an observer shares the loop
// and is not observed; a stopped observer sees nothing more.
func TestStartWithObserver_ReportsEveryProbe(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)
	ev := &events{}
	observe := func(p healthprobe.Probe) {
		if p.At.IsZero() || p.Duration < 0 {
			ev.add("bad probe %+v", p)
		}
		ev.add("probe %v: %s", p.Outcome, p.Reason)
	}
	stop := clk.StartWithObserver(sc, testConfig(), func(healthy bool, reason string) { ev.add("verdict %t: %s", healthy, reason) }, observe)
	w := clk.Next(t)
	assert.Equal(t, []string{"probe healthy: SERVING", "verdict true: SERVING"}, ev.take())

	plain := &hooks{server: ts}
	stopPlain := clk.Start(sc, testConfig(), plain.record)
	defer stopPlain()
	plain.waitVerdicts(t, 1)
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	w = clk.Step(t, w)
	assert.Equal(t, []string{"probe unhealthy: NOT_SERVING", "verdict false: 1 consecutive failures: NOT_SERVING"}, ev.take())

	stop()
	clk.Step(t, w)
	assert.Empty(t, ev.take(), "a stopped observer was called")
	assert.Equal(t, 2, plain.numVerdicts(), "the plain listener lost the loop")
}

// TestStart_NilOnChange: a caller that only observes may pass a nil
// onChange.
func TestStart_NilOnChange(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)
	ev := &events{}
	stop := clk.StartWithObserver(sc, testConfig(), nil, func(p healthprobe.Probe) { ev.add("probe %v", p.Outcome) })
	defer stop()
	clk.Step(t, clk.Next(t))
	assert.Equal(t, []string{"probe healthy", "probe healthy"}, ev.take())
}

// TestStart_NewestConfigGovernsUntilItStops: a second Start with another
// interval makes the loop wait that interval at once (not the rest of the
// old wait); when it stops, the first listener's interval governs again,
// also at once.
func TestStart_NewestConfigGovernsUntilItStops(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5) // waits equal Interval
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)
	a, b := testConfig(), testConfig()
	b.Interval = config.Duration(2 * time.Second)

	stopA := clk.Start(sc, a, nil)
	defer stopA()
	require.Equal(t, time.Second, clk.Next(t).D)
	stopB := clk.Start(sc, b, nil)
	w := clk.Next(t)
	require.Equal(t, 2*time.Second, w.D, "wait after B joined")
	stopB()
	w = clk.Next(t) // the wait restarts with A's interval, from now
	assert.Equal(t, time.Second, w.D, "wait after B stopped")
	clk.Step(t, w)
	assert.Equal(t, 2, ts.numCalls())
}

// TestOutcome_String: the names metrics use.
func TestOutcome_String(t *testing.T) {
	for o, want := range map[healthprobe.Outcome]string{
		healthprobe.OutcomeHealthy: "healthy", healthprobe.OutcomeUnhealthy: "unhealthy",
		healthprobe.OutcomeTimeout: "timeout", healthprobe.OutcomeError: "error",
		probe.NotServing: "unhealthy", 5: "unknown",
	} {
		assert.Equal(t, want, o.String())
	}
}
