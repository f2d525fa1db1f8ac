package balancer

import (
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/healthprobe"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// The configuration each part of the policy is built from, derived from
// the service config where it is used (nothing is precomputed into
// LBConfig, so a DefaultConfig handed over by a parent policy works).

func engineConfig(c *LBConfig) endpointset.Config {
	return endpointset.Config{
		PanicThresholdPercent: c.PanicThresholdPercent,
		MaxEjectionPercent:    c.MaxEjectionPercent,
		SlowStart: endpointset.SlowStartConfig{
			Window:           time.Duration(c.SlowStart.Window),
			Aggression:       c.SlowStart.Aggression,
			MinWeightPercent: c.SlowStart.MinWeightPercent,
		},
	}
}

func engineOptions(c *LBConfig, onChange func()) endpointset.Options {
	o := endpointset.Options{
		Probing:  c.HealthProbe.Enabled,
		Warmup:   c.HealthProbe.Warmup,
		OnChange: onChange,
	}
	if c.Breaker.Enabled {
		bc := breaker.Config{
			ConsecutiveFailures: c.Breaker.ConsecutiveFailures,
			FailureRatio:        c.Breaker.FailureRatio,
			MinRequests:         c.Breaker.MinRequests,
			Window:              time.Duration(c.Breaker.Window),
			OpenDuration:        time.Duration(c.Breaker.OpenDuration),
			MaxOpenDuration:     time.Duration(c.Breaker.MaxOpenDuration),
			HalfOpenRequests:    c.Breaker.HalfOpenRequests,
			TrialTimeout:        breaker.DefaultConfig().TrialTimeout,
		}
		o.Breaker = &bc
	}
	return o
}

func pickerConfig(c *LBConfig) picker.Config {
	return picker.Config{
		ChoiceCount:       c.ChoiceCount,
		ActiveRequestBias: c.ActiveRequestBias,
		LatencyAware:      c.LatencyAware,
		LatencyDecay:      time.Duration(c.LatencyDecay),
	}
}

func probeConfig(c *LBConfig) healthprobe.Config {
	h := c.HealthProbe
	return healthprobe.Config{
		Service:                h.Service,
		Interval:               time.Duration(h.Interval),
		Timeout:                time.Duration(h.Timeout),
		Jitter:                 h.Jitter,
		UnhealthyThreshold:     h.UnhealthyThreshold,
		HealthyThreshold:       h.HealthyThreshold,
		UnimplementedIsHealthy: h.UnimplementedIsHealthy,
	}
}
