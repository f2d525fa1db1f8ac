package resolver

import (
	"sync"
	"sync/atomic"
	"time"

	estats "google.golang.org/grpc/experimental/stats"

	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// resolverMetrics records the resolver's metrics (package metrics:
// updates pushed, source errors, last known good in use and its age)
// through the channel's MetricsRecorder. The gauges are read at collection
// time from atomics that the run goroutine sets.
type resolverMetrics struct {
	rec        metrics.Recorder
	target     string
	unregister func()
	// lkgSince is, while the last known good set is served because the
	// source fails, the Unix nanoseconds at which the source last
	// confirmed it; 0 otherwise.
	lkgSince atomic.Int64
	// heldSince is, while an empty answer is held off (hold.go), the Unix
	// nanoseconds at which the hold began; 0 otherwise.
	heldSince atomic.Int64
	// confirmedAt is when the source last delivered a good set (run
	// goroutine only).
	confirmedAt time.Time
}

func (r *fulcrumResolver) initMetrics(mr estats.MetricsRecorder, target string) {
	m := &r.metrics
	m.rec, m.target = metrics.GRPC(mr), target
	m.unregister = m.rec.RegisterGauges(func(set func(*metrics.Metric, int64, ...string)) {
		set(metrics.ResolverEmptyHeld, min(m.heldSince.Load(), 1), m.target)
		since := m.lkgSince.Load()
		if since == 0 {
			set(metrics.ResolverLKG, 0, m.target)
			set(metrics.ResolverLKGAge, 0, m.target)
			return
		}
		set(metrics.ResolverLKG, 1, m.target)
		set(metrics.ResolverLKGAge, int64(r.clk.Now().Sub(time.Unix(0, since))/time.Second), m.target)
	}, metrics.ResolverLKG, metrics.ResolverLKGAge, metrics.ResolverEmptyHeld)
}

// status is the resolver's state for fulcrumz, published by the run
// goroutine after each event it handled.
type status struct {
	mu sync.Mutex
	s  fulcrumz.ResolverState
}

func (st *status) get() fulcrumz.ResolverState {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s
}

// publish copies what fulcrumz shows from the run goroutine's state.
func (r *fulcrumResolver) publish() {
	s := fulcrumz.ResolverState{Source: r.tc.sourceName, Endpoints: len(r.good)}
	if r.failing && r.lastErr != nil {
		s.SourceError = r.lastErr.Error()
	}
	if r.holdTimer != nil {
		since, until := r.heldSince, r.heldSince.Add(r.tc.emptyGrace)
		s.EmptyHeldSince, s.EmptyHeldUntil = &since, &until
	}
	r.status.mu.Lock()
	r.status.s = s
	r.status.mu.Unlock()
}

// recorder is rec, or Nop for a resolver built without initMetrics (tests).
func (m *resolverMetrics) recorder() metrics.Recorder {
	if m.rec == nil {
		return metrics.Nop
	}
	return m.rec
}

// confirmed records that the source delivered a good set.
func (m *resolverMetrics) confirmed(now time.Time) {
	m.confirmedAt = now
	m.lkgSince.Store(0)
}

// pushed records an update pushed to the channel.
func (m *resolverMetrics) pushed() { m.recorder().Add(metrics.ResolverUpdates, 1, m.target) }

// sourceError records a source error; serving says the last known good set
// stays in use.
func (m *resolverMetrics) sourceError(serving bool) {
	m.recorder().Add(metrics.ResolverErrors, 1, m.target)
	if serving && m.lkgSince.Load() == 0 {
		m.lkgSince.Store(m.confirmedAt.UnixNano())
	}
}

// holdStarted records that an empty answer is held off from now on. The
// source answered, so the last known good set is no longer served because
// it fails.
func (m *resolverMetrics) holdStarted(now time.Time) {
	m.recorder().Add(metrics.ResolverEmptyHolds, 1, m.target)
	m.heldSince.Store(now.UnixNano())
	m.lkgSince.Store(0)
}

// holdEnded records that no empty answer is held off any more.
func (m *resolverMetrics) holdEnded() { m.heldSince.Store(0) }

// dropped records that the last known good set is no longer served.
func (m *resolverMetrics) dropped() { m.lkgSince.Store(0) }

func (m *resolverMetrics) close() {
	if m.unregister != nil {
		m.unregister()
	}
}
