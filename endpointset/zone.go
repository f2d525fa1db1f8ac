package endpointset

import (
	"fmt"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// Zone-aware routing (Config.LocalZone). The engine decides how much of
// the traffic its health lets the client's zone take; the picker
// (picker.NewZoned) adds the load rule at each pick. The rule:
//
//   - Health: the local zone takes min(1, overprovisioning x h) of the
//     requests, h being the share of its endpoints' weight that is usable
//     (Envoy's priority load with its overprovisioning factor 1.4, applied
//     to the local zone against the rest). Endpoints still making their
//     first connection or awaiting their first probe are not counted
//     either way, as in panic mode; an endpoint on a breaker trial counts
//     as usable (its gate admits what it can take, and the picker falls
//     back to other zones when it refuses); one kept in rotation by
//     maxEjectionPercent does not. The rest (Spill) goes to the other
//     zones. Slow start does not count: a ramping local endpoint is
//     healthy, its ramp only shapes its share within the zone.
//   - Load (picker): a request meant for the local zone goes to a sampled
//     remote endpoint instead when the chosen local one is more than 4x
//     as loaded (in-flight + 1 per weight, times how much slower the zone
//     is beyond the 2x latency tolerance; picker.busier).
//   - Panic mode turns zone routing off: requests spread over every
//     connected endpoint, as Envoy stops zone-aware routing in panic.
//     The ejection cap and slow start stay global and per endpoint.
//
// Endpoints without a zone count as remote.

// overprovisioning is Envoy's overprovisioning factor: a zone whose usable
// share is at least 1/1.4 (71 %) keeps all of its traffic.
const overprovisioning = 1.4

// ZoneSplit is the zone-aware part of a Decision.
type ZoneSplit struct {
	// Aware says the picker routes by zone: Entries[:Local] are in the
	// client's zone, the rest elsewhere, and both are non-empty.
	Aware bool
	// Local is the number of leading Entries in the client's zone.
	Local int
	// Spill is the share of requests the health rule sends out of the
	// client's zone, in [0, 1] (1: the zone has no usable endpoint); 0
	// when zone-unaware.
	Spill float64
	// Reason says why traffic spills ("" when it does not, or when
	// zone-unaware).
	Reason string
	// Counts counts the picks of the Set's zone-aware pickers by locality
	// (set by Set.Decide; nil when zone-unaware).
	Counts *picker.LocalityCounts
}

// splitZones orders d's candidates local zone first and decides the
// health spill. recs are in key order, d.Results the decision about each.
func splitZones(recs []*Record, cfg Config, d *Decision) {
	if cfg.LocalZone == "" || len(d.Entries) == 0 || d.Panic {
		return
	}
	var total, usable float64
	for i, r := range recs {
		if r.spec.Zone != cfg.LocalZone {
			continue
		}
		res := &d.Results[i]
		if res.State == Connecting || res.State == Warming {
			continue
		}
		w := float64(r.spec.Weight)
		total += w
		if res.State == Usable && !res.Kept {
			usable += w
		}
	}
	// Local first; each side keeps key order.
	local := 0
	for _, r := range d.Records {
		if r.spec.Zone == cfg.LocalZone {
			local++
		}
	}
	if local > 0 && local < len(d.Records) {
		entries := make([]picker.Entry, 0, len(d.Entries))
		records := make([]*Record, 0, len(d.Records))
		for _, inZone := range []bool{true, false} {
			for i, r := range d.Records {
				if (r.spec.Zone == cfg.LocalZone) == inZone {
					entries, records = append(entries, d.Entries[i]), append(records, r)
				}
			}
		}
		d.Entries, d.Records = entries, records
	}
	z := &d.Zone
	z.Local = local
	switch {
	case local == 0:
		z.Spill = 1
		if total == 0 {
			z.Reason = fmt.Sprintf("no endpoint in local zone %q", cfg.LocalZone)
		} else {
			z.Reason = fmt.Sprintf("no usable endpoint in local zone %q", cfg.LocalZone)
		}
	case local == len(d.Records):
		// Nothing usable elsewhere: all local, whatever the health.
	default:
		z.Aware = true
		h := 1.0
		if total > 0 {
			h = usable / total
		}
		z.Spill = max(0, 1-overprovisioning*h)
		if z.Spill > 0 {
			z.Reason = fmt.Sprintf("local zone %q: %.0f %% of its weight usable (x %g overprovisioning < 100 %%)", cfg.LocalZone, 100*h, overprovisioning)
		}
	}
}

// Picker builds the picker of d's candidates: zone-aware when d.Zone says
// so.
func (d *Decision) Picker(cfg picker.Config) *picker.Picker {
	if d.Zone.Counts != nil {
		return picker.NewZoned(cfg, d.Entries, picker.Zones{Local: d.Zone.Local, Spill: d.Zone.Spill, Counts: d.Zone.Counts})
	}
	return picker.New(cfg, d.Entries)
}

// ZoneReport is the zone routing of a Set for metrics and snapshots.
type ZoneReport struct {
	// LocalZone is the client's zone ("": zone-unaware; the rest is zero).
	LocalZone string
	// Split is the last decision's (zero in panic mode and with nothing
	// usable).
	Split ZoneSplit
	// LocalPicks and RemotePicks count the requests sent in and out of
	// the zone since the Set was created.
	LocalPicks, RemotePicks uint64
}

// Zones returns the zone routing in force.
func (s *Set) Zones() ZoneReport {
	s.mu.Lock()
	r := ZoneReport{LocalZone: s.cfg.LocalZone, Split: s.zone}
	s.mu.Unlock()
	if r.LocalZone != "" {
		r.LocalPicks, r.RemotePicks = s.locality.Load()
	}
	r.Split.Counts = nil
	return r
}
