package driver

import (
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/metrics"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// Observer is what one channel or host reports to operators: its metrics
// and its fulcrumz entry. Everything is recorded on state changes, in the
// decision path, on retries and on probes; a successful request records
// nothing, and nothing is added to Pick.
type Observer struct {
	// Read-only after NewObserver.
	m          *metrics.Channel
	set        *endpointset.Set
	unregister func()

	hedger atomic.Pointer[hedge.Hedger] // the channel's or host's, once it hedges
}

// ObserverOptions name what is observed.
type ObserverOptions struct {
	// Transport is "grpc" or "http" (fulcrumz).
	Transport string
	// Target names the channel or host in metrics and fulcrumz.
	Target string
	// Recorder records the metrics; nil records nothing.
	Recorder metrics.Recorder
	// Config returns the configuration in force for fulcrumz and the
	// latency decay the view reports estimates with (0: latency term off);
	// ok false (not configured yet) leaves the entry out of snapshots and
	// the gauges unreported.
	Config func() (cfg any, latencyDecay time.Duration, ok bool)
}

// NewObserver registers set's metrics and fulcrumz entry. Close removes
// them.
func NewObserver(set *endpointset.Set, o ObserverOptions) *Observer {
	rec := o.Recorder
	if rec == nil {
		rec = metrics.Nop
	}
	ob := &Observer{set: set}
	ob.m = metrics.NewChannel(rec, o.Target, func() (endpointset.Counts, bool) {
		if _, _, ok := o.Config(); !ok {
			return endpointset.Counts{}, false
		}
		c, _ := set.Counts()
		return c, true
	}, set.Zones)
	ob.unregister = fulcrumz.RegisterHedged(o.Transport, o.Target, func() (endpointset.View, any, bool) {
		cfg, decay, ok := o.Config()
		if !ok {
			return endpointset.View{}, nil, false
		}
		return set.View(decay), cfg, true
	}, ob.hedging)
	return ob
}

// Metrics returns the channel's metrics, for the events only the adapter
// sees (picks that found nothing usable, retries).
func (o *Observer) Metrics() *metrics.Channel { return o.m }

// Hedging makes h's events count in the channel's metrics and its delay
// show in fulcrumz. The gRPC adapter calls it on each hedged pick (the
// interceptor owns the hedger; the balancer learns of it through the
// pick's context), so it is one atomic load when nothing changed.
func (o *Observer) Hedging(h *hedge.Hedger) {
	if o.hedger.Load() != h {
		o.hedger.Store(h)
		h.SetObserver(o.m)
	}
}

func (o *Observer) hedging() *fulcrumz.Hedging {
	h := o.hedger.Load()
	if h == nil {
		return nil
	}
	d, adaptive, known := h.Delay()
	if !known {
		d = 0
	}
	return &fulcrumz.Hedging{DelaySeconds: d.Seconds(), Adaptive: adaptive, Known: known}
}

// decided records a decision (panic mode entered).
func (o *Observer) decided(d *endpointset.Decision) { o.m.Decided(d) }

// Probe records one completed probe of rec: the metric, and the engine's
// last probe for the snapshot.
func (o *Observer) Probe(rec *endpointset.Record, p probe.Probe) {
	o.m.Probe(p.Outcome.String(), p.Duration)
	o.set.ObserveProbe(rec, endpointset.ProbeResult{Outcome: p.Outcome.String(), Reason: p.Reason, At: p.At, Duration: p.Duration})
}

// Close removes the gauges and the fulcrumz entry.
func (o *Observer) Close() {
	o.unregister()
	o.m.Close()
}
