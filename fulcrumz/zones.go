package fulcrumz

import (
	"fmt"
	"io"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// Zones is a channel's zone-aware routing (localZone set).
type Zones struct {
	LocalZone string `json:"localZone"`
	// SpillPercent is the share of requests the local zone's health sends
	// to other zones; SpillReason says why ("" when none). Requests may
	// also leave the zone on load (the chosen local endpoint more than 4x
	// as loaded as a remote one): RemotePicks counts both.
	SpillPercent float64 `json:"spillPercent"`
	SpillReason  string  `json:"spillReason,omitempty"`
	LocalPicks   uint64  `json:"localPicks"`
	RemotePicks  uint64  `json:"remotePicks"`
	// Zones: the local zone first, then by name.
	Zones []Zone `json:"zones"`
}

// Zone is one zone's usable share and load.
type Zone struct {
	Zone           string  `json:"zone"`
	Local          bool    `json:"local"`
	Endpoints      int     `json:"endpoints"`
	Usable         int     `json:"usable"`
	UsablePercent  float64 `json:"usablePercent"`
	InFlight       int64   `json:"inFlight"`
	LatencySeconds float64 `json:"latencySeconds"`
}

func convertZones(v *endpointset.ZonesView) *Zones {
	if v == nil {
		return nil
	}
	z := &Zones{LocalZone: v.LocalZone, SpillPercent: v.SpillPercent, SpillReason: v.SpillReason, LocalPicks: v.LocalPicks, RemotePicks: v.RemotePicks, Zones: []Zone{}}
	for _, zv := range v.Zones {
		z.Zones = append(z.Zones, Zone{
			Zone: zv.Zone, Local: zv.Local, Endpoints: zv.Endpoints, Usable: zv.Usable,
			UsablePercent: zv.UsablePercent, InFlight: zv.InFlight, LatencySeconds: zv.Latency.Seconds(),
		})
	}
	return z
}

// writeZones writes z's lines of the text format.
func writeZones(w io.Writer, z *Zones) {
	if z == nil {
		return
	}
	local := 100.0
	if n := z.LocalPicks + z.RemotePicks; n > 0 {
		local = 100 * float64(z.LocalPicks) / float64(n)
	}
	fmt.Fprintf(w, "  zones: local %q, health spill %.1f %%, picks %.1f %% local (%d local, %d remote)\n", z.LocalZone, z.SpillPercent, local, z.LocalPicks, z.RemotePicks)
	if z.SpillReason != "" {
		fmt.Fprintf(w, "  spilling: %s\n", z.SpillReason)
	}
	for _, zn := range z.Zones {
		name := zn.Zone
		if name == "" {
			name = "(none)"
		}
		if zn.Local {
			name += " (local)"
		}
		fmt.Fprintf(w, "    zone %s: %d/%d usable (%.0f %% of weight), %d in flight, latency %s\n",
			name, zn.Usable, zn.Endpoints, zn.UsablePercent, zn.InFlight, latency(zn.LatencySeconds))
	}
}
