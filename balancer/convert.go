package balancer

import (
	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// The engine's view of the service config, derived where it is used
// (nothing is precomputed into LBConfig, so a DefaultConfig handed over by
// a parent policy works as it is).
func engineOptions(c *LBConfig, onChange func()) endpointset.Options {
	o := endpointset.Options{
		Probing:  c.HealthProbe.Enabled,
		Warmup:   c.HealthProbe.Warmup,
		OnChange: onChange,
		Logger:   logger,
	}
	if c.Breaker.Enabled {
		bc := c.Breaker.Config
		o.Breaker = &bc
	}
	return o
}
