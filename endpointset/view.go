package endpointset

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// View is a read-only copy of the engine's state for reports (the snapshot
// handler, metrics). Taking one locks the Set briefly, never a picker: the
// per-request state (in-flight, picks, latency, breaker) is read from the
// atomics the pickers write.
type View struct {
	// Config is the engine's configuration in force.
	Config Config
	// Probing says whether an active health probe runs on connections.
	Probing bool
	// Panic says the last decision was in panic mode, and PanicReason why.
	Panic       bool
	PanicReason string
	// Counts are the last decision's counts by state.
	Counts Counts
	// Zones is the zone routing; nil when zone-unaware (no localZone).
	Zones *ZonesView
	// Endpoints in key order.
	Endpoints []EndpointView
}

// EndpointView is one endpoint of a View.
type EndpointView struct {
	Key      string
	Addrs    []string
	Zone     string
	Metadata map[string]string
	// Weight is the discovery weight, EffectiveWeight the weight the
	// picker uses (x the slow-start factor; 0 when not a candidate).
	Weight          uint32
	EffectiveWeight float64
	State           State
	Reason          string
	// Kept says maxEjectionPercent keeps it in rotation, breaker open.
	Kept    bool
	Ramping bool
	// Picked says the endpoint is a candidate of the current picker.
	Picked bool
	Conn   Conn
	// InFlight and Picks are the picker's counters; Picks counts requests
	// selected since the endpoint's shared state was created (a breaker
	// configuration change starts it over).
	InFlight int64
	Picks    uint64
	// Latency is the peak-EWMA estimate (zero when unknown or when the
	// latency term is off).
	Latency time.Duration
	// Breaker is nil when breakers are off.
	Breaker *BreakerView
	// Probe is the last probe of the endpoint, nil before the first.
	Probe *ProbeResult
}

// BreakerView is an endpoint's breaker in a View.
type BreakerView struct {
	State breaker.State
	// OpenUntil is when the open period ends (State Open only).
	OpenUntil time.Time
	// Trips is the level of the current or last trip.
	Trips int
	// Transitions counts the breaker's state changes.
	Transitions uint64
}

// ProbeResult is the outcome of one health probe, as an adapter reports it
// with Set.ObserveProbe.
type ProbeResult struct {
	// Outcome is one of "healthy", "unhealthy", "timeout", "error".
	Outcome string
	// Reason says what the probe saw.
	Reason string
	// At is when the probe finished, Duration how long it took.
	At       time.Time
	Duration time.Duration
}

// ObserveProbe records the last probe of r, for reports only: verdicts
// still come through SetHealth. A result for a record no longer in the Set
// is dropped.
func (s *Set) ObserveProbe(r *Record, p ProbeResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs[r.Key] != r {
		return
	}
	r.probe = &p
}

// View returns the engine's state now. latencyDecay is the time constant
// the pickers use for the latency estimate (the engine does not know it).
func (s *Set) View(latencyDecay time.Duration) View {
	s.mu.Lock()
	v := View{
		Config:  s.cfg,
		Probing: s.opts.Probing,
		Panic:   s.panicking,
		Counts:  s.counts,
	}
	v.Endpoints = make([]EndpointView, len(s.sorted))
	for i, r := range s.sorted {
		e := &v.Endpoints[i]
		*e = EndpointView{
			Key:             r.Key,
			Addrs:           slices.Clone(r.spec.Addrs),
			Zone:            r.spec.Zone,
			Kept:            r.last.Kept,
			Metadata:        maps.Clone(r.spec.Metadata),
			Weight:          r.spec.Weight,
			EffectiveWeight: r.last.Weight,
			State:           r.last.State,
			Reason:          r.last.Reason,
			Ramping:         r.last.Ramping,
			Picked:          r.last.Picked,
			Conn:            r.conn,
		}
		if r.last == (Result{}) {
			e.State, e.Reason = Connecting, "new, not decided yet"
		}
		if r.probe != nil {
			p := *r.probe
			e.Probe = &p
		}
		if b := r.Hot.Breaker(); b != nil {
			bs := b.Snapshot()
			e.Breaker = &BreakerView{State: bs.State, Trips: bs.Trips, Transitions: bs.Transitions}
			if bs.State == breaker.Open {
				e.Breaker.OpenUntil = s.epoch.Add(time.Duration(bs.Until))
			}
		}
		// Read under s.mu only so that Hot is the current one; these are
		// atomic loads.
		e.InFlight, e.Picks = r.Hot.InFlight(), r.Hot.Picks()
		if latencyDecay > 0 {
			e.Latency = r.Hot.Latency(latencyDecay)
		}
	}
	zone := s.zone
	s.mu.Unlock()
	if z := v.Config.LocalZone; z != "" {
		v.Zones = &ZonesView{LocalZone: z, SpillPercent: 100 * zone.Spill, SpillReason: zone.Reason, Zones: zonesView(z, v.Endpoints)}
		v.Zones.LocalPicks, v.Zones.RemotePicks = s.locality.Load()
		if v.Panic {
			v.Zones.SpillReason = "panic mode: zone routing off, picking among every connected endpoint"
		}
	}
	if v.Panic {
		c := v.Counts
		v.PanicReason = fmt.Sprintf("%d of %d endpoints usable (%d unhealthy, %d ejected by breaker, %d not connected), below panicThresholdPercent %g",
			c.Usable, c.Total, c.Unhealthy, c.Ejected, c.Disconnected, v.Config.PanicThresholdPercent)
	}
	return v
}

// Counts returns the last decision's counts by state.
func (s *Set) Counts() (c Counts, panicking bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts, s.panicking
}
