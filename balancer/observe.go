package balancer

import (
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"

	"github.com/fulcrum-lb/fulcrum/driver"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// newObserver registers the balancer's metrics, through the ClientConn's
// MetricsRecorder, and its snapshot in fulcrumz (package driver).
func newObserver(b *wlrBalancer, cc grpcbalancer.ClientConn, opts grpcbalancer.BuildOptions) *driver.Observer {
	return driver.NewObserver(b.set, driver.ObserverOptions{
		Transport: "grpc",
		Target:    opts.Target.String(),
		Recorder:  metrics.GRPC(cc.MetricsRecorder()),
		Config: func() (any, time.Duration, bool) {
			b.mu.Lock()
			cfg := b.cfg
			b.mu.Unlock()
			if cfg == nil {
				return nil, 0, false
			}
			var decay time.Duration
			if cfg.LatencyAware {
				decay = time.Duration(cfg.LatencyDecay)
			}
			return cfg, decay, true
		},
	})
}

// observedPicker makes gp count picks that every candidate's breaker
// refused.
func (b *wlrBalancer) observedPicker(gp *grpcPicker) *grpcPicker {
	gp.onRejected = b.obs.Metrics().NoUsableEndpoint
	gp.onHedged = b.obs.Hedging
	return gp
}

// failingPicker returns a picker that fails every pick with p's error
// because no endpoint is usable, and counts them.
func (b *wlrBalancer) failingPicker(p *errPicker) grpcbalancer.Picker {
	return &noUsablePicker{errPicker: p, count: b.obs.Metrics().NoUsableEndpoint}
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
	c.b.obs.Probe(c.rec, p)
}
