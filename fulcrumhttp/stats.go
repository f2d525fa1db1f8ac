package fulcrumhttp

import (
	"cmp"
	"slices"
)

// Stats is a read-only snapshot of a Transport's counters.
type Stats struct {
	// Retries is the number of attempts after the first, over all hosts
	// (each host has its own budget).
	Retries uint64
	// RetriesDenied counts retries that were due but refused by the retry
	// budget.
	RetriesDenied uint64
	// Endpoints lists every current endpoint, by host then address.
	Endpoints []EndpointStats
}

// EndpointStats describes one endpoint of one host.
type EndpointStats struct {
	Host     string // the map key
	Addr     string // the first address of the endpoint
	Weight   uint32
	InFlight int64  // attempts sent whose response body has not ended
	Requests uint64 // attempts sent
	Failures uint64 // attempts counted as breaker failures
	// Healthy is the probe verdict (true when not probing or not yet
	// probed).
	Healthy bool
	// Breaker is the breaker state: "closed", "open", "half-open", or ""
	// when the breaker is disabled.
	Breaker string
	// State is the engine's last decision about the endpoint ("usable",
	// "warming", "unhealthy", "ejected"), and Reason says why (or that a
	// Retry-After makes selection prefer other endpoints until a time).
	State, Reason string
}

// Stats returns the current counters.
func (t *Transport) Stats() Stats {
	s := Stats{Retries: t.retries.Load(), RetriesDenied: t.retriesDenied.Load()}
	for _, g := range t.groups {
		results := g.set.Results()
		g.mu.Lock()
		for key, ep := range g.eps {
			es := EndpointStats{
				Host:     g.route.key,
				Addr:     ep.addr(),
				Weight:   ep.weight,
				Requests: ep.requests.Load(),
				Failures: ep.failures.Load(),
				Healthy:  !ep.probe.known || ep.probe.healthy,
			}
			es.InFlight = ep.rec.Hot.InFlight()
			if b := ep.rec.Hot.Breaker(); b != nil {
				es.Breaker = b.State().String()
			}
			if r, ok := results[key]; ok {
				es.State, es.Reason = r.State.String(), r.Reason
			}
			if h := ep.rt.held(); !h.IsZero() {
				es.Reason = "other endpoints preferred after Retry-After until " + h.Format("15:04:05.000")
			}
			s.Endpoints = append(s.Endpoints, es)
		}
		g.mu.Unlock()
	}
	slices.SortFunc(s.Endpoints, func(a, b EndpointStats) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Addr, b.Addr))
	})
	return s
}
