package picker

// Zones tells a picker which candidates are in the client's zone (see
// package endpointset, zone.go, for the rule).
type Zones struct {
	// Local is the number of leading entries in the client's zone.
	Local int
	// Spill is the share of requests sent out of the zone whatever the
	// load, in [0, 1] (the zone's health shortfall).
	Spill float64
}

// zoneBand is how much costlier than a remote endpoint the chosen local
// one must be for a request to leave the zone on load: the cost is
// (in-flight + 1) x latency estimate (Linkerd's), and a remote estimate
// includes the cross-zone round trip. A band (rather than "lower cost
// wins") keeps the normal jitter of in-flight counts and estimates from
// spilling requests, and makes the spill proportional: a request leaves
// only while the local zone is clearly the busier, and the spill itself
// brings the local cost back under the band.
const zoneBand = 3.0

// zoned is the zone-aware choice of a Picker: a picker over each side,
// sharing the outer picker's entries (indices of remote entries are
// offset by local).
type zoned struct {
	local, remote *Picker
	n             int // len(local.entries)
	spill         float64
}

// NewZoned builds a picker over entries whose first z.Local are in the
// client's zone: a request goes to a remote candidate with probability
// z.Spill, and otherwise to the best local candidate unless it is clearly
// busier than a sampled remote one (zoneBand). Without both sides it is
// New.
func NewZoned(cfg Config, entries []Entry, z Zones) *Picker {
	p := New(cfg, entries)
	if z.Local <= 0 || z.Local >= len(entries) {
		return p
	}
	local, remote := New(cfg, entries[:z.Local]), New(cfg, entries[z.Local:])
	local.ended, remote.ended = p.ended, p.ended
	p.zone = &zoned{local: local, remote: remote, n: z.Local, spill: min(max(z.Spill, 0), 1)}
	return p
}

// Zoned reports whether p routes by zone, and its Zones.
func (p *Picker) Zoned() (Zones, bool) {
	if p.zone == nil {
		return Zones{}, false
	}
	return Zones{Local: p.zone.n, Spill: p.zone.spill}, true
}

// choose is Picker.choose across zones: an index of the outer picker, or
// -1 if every candidate drawn was refused by its gate.
func (z *zoned) choose(now int64) int {
	if z.spill > 0 && (z.spill >= 1 || randFloat64() < z.spill) {
		if j := z.remote.choose(now); j >= 0 {
			return z.n + j
		}
		return z.local.choose(now)
	}
	i := z.local.choose(now)
	if i < 0 {
		// Every local candidate drawn refused (breakers on trial): the
		// request goes elsewhere rather than failing.
		if j := z.remote.choose(now); j >= 0 {
			return z.n + j
		}
		return -1
	}
	j := z.remote.sample()
	if r := &z.remote.entries[j]; r.admits() && z.local.busier(&z.local.entries[i], r, now) {
		return z.n + j
	}
	return i
}

// busier reports whether local candidate a costs more than zoneBand times
// remote candidate r. The remote estimate is taken as of its last sample,
// undecayed: the decay exists to try a penalised endpoint again, and here
// it would only make a remote endpoint that the zone rule keeps idle look
// ever cheaper. An endpoint without an estimate is taken to be as fast as
// the other.
func (p *Picker) busier(a, r *Entry, now int64) bool {
	na, nr := a.Endpoint.inFlight.Load(), r.Endpoint.inFlight.Load()
	ca, cr := float64(na+1)/a.Weight, float64(nr+1)/r.Weight
	if p.cfg.LatencyAware {
		ea, _ := a.Endpoint.estimate(na, now, p.rate)
		_, er := r.Endpoint.estimate(nr, now, p.rate)
		if ea > 0 && er > 0 {
			ca, cr = ca*max(ea, latencyFloor), cr*max(er, latencyFloor)
		}
	}
	return ca > zoneBand*cr
}
