package balancer

import (
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"

	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// observer is what the balancer reports to operators: its metrics,
// through the ClientConn's MetricsRecorder, and its snapshot in fulcrumz.
// Everything is recorded on state changes and in the decision path; a
// successful pick records nothing.
type observer struct {
	// Read-only after newObserver.
	m          *metrics.Channel
	unregister func() // from fulcrumz
}

func newObserver(b *wlrBalancer, cc grpcbalancer.ClientConn, opts grpcbalancer.BuildOptions) *observer {
	target := opts.Target.String()
	o := &observer{}
	o.m = metrics.NewChannel(metrics.GRPC(cc.MetricsRecorder()), target, func() (endpointset.Counts, bool, bool) {
		b.mu.Lock()
		set := b.set
		b.mu.Unlock()
		if set == nil {
			return endpointset.Counts{}, false, false
		}
		c, panicking := set.Counts()
		return c, panicking, true
	})
	o.unregister = fulcrumz.Register("grpc", target, b.view)
	return o
}

func (o *observer) close() {
	o.unregister()
	o.m.Close()
}

// view is the balancer's state for fulcrumz.
func (b *wlrBalancer) view() (endpointset.View, any, bool) {
	b.mu.Lock()
	set, cfg := b.set, b.cfg
	b.mu.Unlock()
	if set == nil {
		return endpointset.View{}, nil, false
	}
	var decay time.Duration
	if cfg.LatencyAware {
		decay = time.Duration(cfg.LatencyDecay)
	}
	return set.View(decay), cfg, true
}

// decided records a decision (panic mode entered).
func (o *observer) decided(d *endpointset.Decision) { o.m.Decided(d) }

// picker makes gp count picks that every candidate's breaker refused.
func (o *observer) picker(gp *grpcPicker) *grpcPicker {
	gp.onRejected = o.m.NoUsableEndpoint
	return gp
}

// failing returns a picker that fails every pick with p's error because no
// endpoint is usable, and counts them.
func (o *observer) failing(p *errPicker) grpcbalancer.Picker {
	return &noUsablePicker{errPicker: p, count: o.m.NoUsableEndpoint}
}

type noUsablePicker struct {
	*errPicker
	count func()
}

func (p *noUsablePicker) Pick(info grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	p.count()
	return p.errPicker.Pick(info)
}

// observeProbe records one probe of c's connection: the metric, and the
// engine's last probe for the snapshot.
func (c *child) observeProbe(p healthprobe.Probe) {
	b := c.b
	b.mu.Lock()
	set := b.set
	b.mu.Unlock()
	b.obs.m.Probe(p.Outcome.String(), p.Duration)
	set.ObserveProbe(c.rec, endpointset.ProbeResult{Outcome: p.Outcome.String(), Reason: p.Reason, At: p.At, Duration: p.Duration})
}
