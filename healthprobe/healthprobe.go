// Package healthprobe actively probes each connection with grpc.health.v1.Health/Check and reports a healthy/unhealthy verdict with hysteresis.
// The loop, the verdict and the transport-neutral configuration are package
// probe's; this package adds the Check prober (GRPCConfig, classify) and one
// loop per SubConn shared by every Start on it (a grpc-go Producer).
package healthprobe

import (
	"sync"

	"google.golang.org/grpc/balancer"
)

// Start begins probing sc, which should be READY, with cfg, and calls
// onChange(healthy, reason) once after the first probe completes, whatever
// its result (the first probe fires at once, not one interval later), and
// then whenever the verdict changes. An invalid cfg is logged as an error and
// replaced by DefaultGRPCConfig(); validate it when parsing.
//
// There is one probe loop per SubConn, never two: a second Start on the same
// SubConn joins the running loop, receives its current verdict as soon as
// there is one, and its cfg governs the shared loop from the next probe on
// (the most recently started listener's cfg wins until it stops).
//
// grpc-go cancels the loop by itself when sc leaves READY or is shut down: no
// probe is sent and no onChange call begins after that (one already running
// completes). Call Start again once sc is READY again.
//
// onChange runs on the probe goroutine, never concurrently with itself for
// one Start. stop is idempotent; when it returns onChange will not be called
// again, and if this was the SubConn's last listener the probe goroutine has
// exited. stop therefore waits for a running onChange to return: do not call
// stop from inside onChange, nor while holding a lock that onChange takes.
func Start(sc balancer.SubConn, cfg GRPCConfig, onChange func(healthy bool, reason string)) (stop func()) {
	return start(producerBuilderSingleton, sc, cfg, onChange, nil)
}

func start(pb *producerBuilder, sc balancer.SubConn, cfg GRPCConfig, onChange func(healthy bool, reason string), observe func(Probe)) (stop func()) {
	if err := cfg.Validate(); err != nil {
		logger.Errorf("[healthprobe %v] invalid config, using defaults: %v", sc, err)
		cfg = DefaultGRPCConfig()
	}
	if onChange == nil {
		onChange = func(bool, string) {}
	}
	pr, unref := sc.GetOrBuildProducer(pb)
	p := pr.(*producer)
	l := &listener{cfg: cfg, onChange: onChange, onProbe: observe}
	p.register(l)
	return sync.OnceFunc(func() {
		// Taking l.mu waits out an onChange call in progress; afterwards the
		// loop sees stopped and skips l.
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		p.unregister(l)
		// Dropping the last reference makes grpc-go call p.close, which
		// stops the loop.
		unref()
		if done := p.closedDone(); done != nil {
			<-done
		}
	})
}
