package balancer

import (
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// probeConfigLocked is the probe configuration of one connection: the
// configured one with its interval scaled to the channel's probe budget,
// healthProbe.maxProbesPerSecond. With n endpoints each connection is
// probed every max(healthProbe.interval, n / maxProbesPerSecond). A server
// with C clients receives C / interval probes per second (10 000 a second
// for 5 000 clients at the default 500ms), and a client of N endpoints
// sends N / interval (20 000 a second at N = 10 000); with the cap a client
// sends at most maxProbesPerSecond, and a server behind N-endpoint
// channels receives about C x maxProbesPerSecond / N.
//
// What it costs: a hung server in a large channel is noticed by its probe
// later (the scaled interval x unhealthyThreshold); least-request (a hung
// endpoint accumulates RPCs), the latency term and the breaker do not
// depend on probes. Caller must hold b.mu.
func (b *wlrBalancer) probeConfigLocked() healthprobe.GRPCConfig {
	pc := b.cfg.HealthProbe
	pc.Interval = config.Duration(probe.ScaledInterval(time.Duration(pc.Interval), len(b.children), pc.MaxProbesPerSecond))
	return pc
}
