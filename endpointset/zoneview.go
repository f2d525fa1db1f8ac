package endpointset

import (
	"slices"
	"time"
)

// ZonesView is the zone routing of a View.
type ZonesView struct {
	// LocalZone is the client's zone.
	LocalZone string
	// SpillPercent is the share of requests the local zone's health sends
	// elsewhere (the last decision's ZoneSplit.Spill, in percent), and
	// SpillReason why ("" when none).
	SpillPercent float64
	SpillReason  string
	// LocalPicks and RemotePicks count requests sent in and out of the
	// zone.
	LocalPicks, RemotePicks uint64
	// Zones are every zone of the endpoints, the local one first, then by
	// name ("" for endpoints without a zone).
	Zones []ZoneView
}

// ZoneView is one zone's capacity and load.
type ZoneView struct {
	Zone  string
	Local bool
	// Endpoints counts the zone's endpoints, Usable those usable.
	Endpoints, Usable int
	// UsablePercent is the usable share of its weight, not counting
	// endpoints still connecting or awaiting their first probe (the
	// health rule's h).
	UsablePercent float64
	// InFlight is the requests in flight on it.
	InFlight int64
	// Latency is the mean latency estimate of its endpoints that have one
	// (zero when none or the latency term is off).
	Latency time.Duration
}

// zonesView summarises v's endpoints by zone. Caller fills the rest.
func zonesView(local string, eps []EndpointView) []ZoneView {
	idx := map[string]int{}
	var zs []ZoneView
	type acc struct {
		total, usable, lat float64
		known              int
	}
	var accs []acc
	for _, e := range eps {
		i, ok := idx[e.Zone]
		if !ok {
			i = len(zs)
			idx[e.Zone] = i
			zs = append(zs, ZoneView{Zone: e.Zone, Local: e.Zone == local})
			accs = append(accs, acc{})
		}
		z, a := &zs[i], &accs[i]
		z.Endpoints++
		z.InFlight += e.InFlight
		if e.Latency > 0 {
			a.lat += float64(e.Latency)
			a.known++
		}
		if e.State == Connecting || e.State == Warming {
			continue
		}
		a.total += float64(e.Weight)
		if e.State == Usable && !e.Kept {
			z.Usable++
			a.usable += float64(e.Weight)
		}
	}
	for i := range zs {
		if a := accs[i]; a.total > 0 {
			zs[i].UsablePercent = 100 * a.usable / a.total
		}
		if a := accs[i]; a.known > 0 {
			zs[i].Latency = time.Duration(a.lat / float64(a.known))
		}
	}
	slices.SortFunc(zs, func(a, b ZoneView) int {
		switch {
		case a.Local != b.Local:
			if a.Local {
				return -1
			}
			return 1
		case a.Zone < b.Zone:
			return -1
		case a.Zone > b.Zone:
			return 1
		}
		return 0
	})
	return zs
}
