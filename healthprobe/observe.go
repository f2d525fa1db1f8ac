package healthprobe

import (
	"google.golang.org/grpc/balancer"

	"github.com/fulcrum-lb/fulcrum/probe"
)

// Outcome is probe.Outcome, the class of one probe's result, for metrics.
type Outcome = probe.Outcome

// The outcomes of probe, under their former names.
const (
	// OutcomeHealthy: SERVING (or UNIMPLEMENTED with
	// UnimplementedIsHealthy).
	OutcomeHealthy = probe.Healthy
	// OutcomeUnhealthy: the server answered, and not SERVING (NOT_SERVING
	// is probe.NotServing, which metrics name "unhealthy" too).
	OutcomeUnhealthy = probe.Unhealthy
	// OutcomeTimeout: no answer within Timeout.
	OutcomeTimeout = probe.Timeout
	// OutcomeError: the Check RPC failed (connection error, UNIMPLEMENTED
	// counted as a failure, any other status).
	OutcomeError = probe.Error
)

// Probe is probe.Probe, one completed probe.
type Probe = probe.Probe

// StartWithObserver is Start with one more callback: observe is called
// after every completed probe of the loop (a probe cut short by the loop's
// end is not reported), before the verdict the probe feeds is delivered to
// onChange. It runs on the probe goroutine under the same rules as
// onChange (stop waits for it; do not call stop from it). Observing does
// not change what is probed or when.
func StartWithObserver(sc balancer.SubConn, cfg GRPCConfig, onChange func(healthy bool, reason string), observe func(Probe)) (stop func()) {
	return start(producerBuilderSingleton, sc, cfg, onChange, observe)
}

// observe reports one completed probe to the listeners that asked for it.
func (p *producer) observe(pr Probe) {
	p.mu.Lock()
	var ls []*listener
	for _, l := range p.listeners {
		if l.onProbe != nil {
			ls = append(ls, l)
		}
	}
	p.mu.Unlock()
	for _, l := range ls {
		if p.stopped.Load() {
			return
		}
		l.mu.Lock()
		if !l.stopped {
			l.onProbe(pr)
		}
		l.mu.Unlock()
	}
}
