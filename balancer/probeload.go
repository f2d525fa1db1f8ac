package balancer

import (
	"time"

	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// maxProbesPerSecond caps the health probes one channel sends, all
// endpoints together: with n endpoints, each connection is probed every
// max(healthProbe.interval, n / maxProbesPerSecond). A server with C
// clients receives C / interval probes per second (10 000 a second for
// 5 000 clients at the default 500ms), and a client of N endpoints sends
// N / interval (20 000 a second at N = 10 000); with the cap a client
// sends at most maxProbesPerSecond, and a server behind N-endpoint
// channels receives about C x maxProbesPerSecond / N. The cap leaves
// channels of up to 100 endpoints at the default interval.
//
// What it costs: a hung server in a large channel is noticed by its probe
// later (the scaled interval x unhealthyThreshold); least-request (a hung
// endpoint accumulates RPCs), the latency term and the breaker do not
// depend on probes. 0 disables the cap. A package variable until it
// becomes healthProbe.maxProbesPerSecond in the service config.
var maxProbesPerSecond = 200.0

// probeConfigLocked is the probe configuration of one connection: the
// configured one with its interval scaled to the channel's probe budget.
// Caller must hold b.mu.
func (b *wlrBalancer) probeConfigLocked() healthprobe.Config {
	pc := probeConfig(b.cfg)
	pc.Interval = scaledProbeInterval(pc.Interval, len(b.children), maxProbesPerSecond)
	return pc
}

// scaledProbeInterval returns max(interval, n / rate); rate <= 0 means no
// cap.
func scaledProbeInterval(interval time.Duration, n int, rate float64) time.Duration {
	if rate <= 0 {
		return interval
	}
	return max(interval, time.Duration(float64(n)/rate*float64(time.Second)))
}
