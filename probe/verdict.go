package probe

import "fmt"

// Verdict turns a sequence of probe results into a healthy/unhealthy
// verdict with hysteresis. The zero value has no verdict yet. Loop keeps
// one; adapters need not.
//
// Envoy (config.core.v3.HealthCheck) defines the thresholds this follows:
// unhealthy_threshold is "the number of unhealthy health checks required
// before a host is marked unhealthy", healthy_threshold "the number of
// healthy health checks required before a host is marked healthy. Note that
// during startup, only a single successful health check is required to
// mark a host healthy." Here the first probe decides the initial verdict
// either way (the warm-up gate): a new endpoint that fails it starts
// unhealthy and needs healthyThreshold successes.
type Verdict struct {
	known     bool // a first probe has completed
	healthy   bool
	reason    string // why the verdict is what it is
	successes int    // consecutive successful probes, capped at the threshold
	failures  int    // consecutive failed probes, capped at the threshold
}

// Observe records one probe's result and reports whether the verdict
// changed, which the first result always does. Only r.Outcome steers it;
// r.Reason becomes part of the verdict's reason.
func (v *Verdict) Observe(r Result, healthyThreshold, unhealthyThreshold int) (changed bool) {
	ok := r.Outcome.OK()
	if r.Outcome == NotServing {
		// The server's own statement: act on it at once, so a draining
		// server gets no traffic from the first probe that sees it.
		unhealthyThreshold = 1
	}
	if ok {
		v.failures = 0
		v.successes = min(v.successes+1, healthyThreshold)
	} else {
		v.successes = 0
		v.failures = min(v.failures+1, unhealthyThreshold)
	}
	switch {
	case !v.known:
		v.known, v.healthy, v.reason = true, ok, r.Reason
		return true
	case ok && !v.healthy && v.successes >= healthyThreshold:
		v.healthy = true
		v.reason = fmt.Sprintf("%d consecutive successes: %s", v.successes, r.Reason)
		return true
	case !ok && v.healthy && v.failures >= unhealthyThreshold:
		v.healthy = false
		v.reason = fmt.Sprintf("%d consecutive failures: %s", v.failures, r.Reason)
		return true
	}
	return false
}

// Known reports whether a first probe has completed.
func (v *Verdict) Known() bool { return v.known }

// Healthy reports the current verdict (false before the first probe).
func (v *Verdict) Healthy() bool { return v.healthy }

// Reason says why the verdict is what it is.
func (v *Verdict) Reason() string { return v.reason }
