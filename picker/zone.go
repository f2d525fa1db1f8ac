package picker

import "sync/atomic"

// Zones tells a picker which candidates are in the client's zone (see
// package endpointset, zone.go, for the rule).
type Zones struct {
	// Local is the number of leading entries in the client's zone.
	Local int
	// Spill is the share of requests sent out of the zone whatever the
	// load, in [0, 1] (the zone's health shortfall).
	Spill float64
	// Counts, if not nil, counts the picker's selections by locality.
	Counts *LocalityCounts
}

// LocalityCounts counts the selections of a channel's (or host's)
// zone-aware pickers: local or remote. It is shared by the pickers of one
// channel and sharded by the chosen endpoint, so that parallel picks on
// different endpoints do not write one cache line.
type LocalityCounts struct {
	shards [localityShards]localityShard
}

const localityShards = 8

type localityShard struct {
	local, remote atomic.Uint64
	_             [cacheLine - 16]byte
}

func (c *LocalityCounts) add(i int, remote bool) {
	sh := &c.shards[i%localityShards]
	if remote {
		sh.remote.Add(1)
	} else {
		sh.local.Add(1)
	}
}

// Load returns the selections counted so far, local and remote.
func (c *LocalityCounts) Load() (local, remote uint64) {
	for i := range c.shards {
		local += c.shards[i].local.Load()
		remote += c.shards[i].remote.Load()
	}
	return local, remote
}

// zoneBand is how much more loaded than a remote endpoint the chosen local
// one must be for a request to leave the zone on load (see busier). A
// band (rather than "less loaded wins") keeps the normal jitter of
// in-flight counts from spilling requests, and makes the spill
// proportional: a request leaves only while the local zone is clearly the
// busier, and the spill itself brings the local load back under the band.
// In the three-zone scenario (600 RPC/s, 3 local endpoints), a band of 3
// kept 98.0 % of a healthy zone's requests local and 4 kept 99.6 %, with
// an overloaded zone's p99 at 32 and 38 ms.
const zoneBand = 4.0

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
// New, counting selections in z.Counts.
func NewZoned(cfg Config, entries []Entry, z Zones) *Picker {
	p := New(cfg, entries)
	p.locality, p.localN = z.Counts, min(max(z.Local, 0), len(entries))
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
	if r := &z.remote.entries[j]; r.admits() && z.local.busier(&z.local.entries[i], &z.local.entries[z.local.sample()], r, now) {
		return z.n + j
	}
	return i
}

// busier reports whether local candidate a is more than zoneBand times as
// loaded as remote candidate r: in-flight + 1 per unit of weight, the
// local one's multiplied by how much slower the local zone is than r when
// that exceeds latencyTolerance (as in beats). The local zone's latency is
// the lower estimate of a and peer, another local endpoint drawn at
// random: an overloaded zone is slow on every endpoint, while one
// endpoint's latency spike (a busy local endpoint's peak-EWMA sits near
// its spikes, a remote one kept idle holds the few samples it got) is
// not the zone's. Taking a's estimate alone sent bursts of a healthy
// zone's requests away (97.8 % local in the three-zone benchmark against
// 99.3-99.8 % with the peer). A remote estimate includes the cross-zone
// round trip, and it is read as of its last sample, undecayed: the decay
// exists to try a penalised endpoint again, here it would make an idle
// remote endpoint look ever faster. An endpoint without an estimate is
// taken to be as fast as the other.
func (p *Picker) busier(a, peer, r *Entry, now int64) bool {
	na, nr := a.Endpoint.inFlight.Load(), r.Endpoint.inFlight.Load()
	ca, cr := float64(na+1)/a.Weight, float64(nr+1)/r.Weight
	if p.cfg.LatencyAware {
		ea, _ := a.Endpoint.estimate(na, now, p.rate)
		if peer != a {
			ep, _ := peer.Endpoint.estimate(peer.Endpoint.inFlight.Load(), now, p.rate)
			ea = min(ea, ep)
		}
		_, er := r.Endpoint.estimate(nr, now, p.rate)
		if er > 0 && ea > latencyTolerance*max(er, latencyFloor) {
			ca *= ea / max(er, latencyFloor)
		}
	}
	return ca > zoneBand*cr
}
