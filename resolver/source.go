package resolver

import (
	"context"
	"fmt"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

// Endpoint is one instance of a service as a Source reports it.
type Endpoint struct {
	// Addresses of the instance; more than one for a dual-stack host. At
	// least one is required.
	Addresses []string
	// Weight relative to the other endpoints; 0 means attrs.DefaultWeight.
	Weight uint32
	// Metadata is free-form data carried to the balancer as an attribute.
	Metadata map[string]string
	// Zone is the instance's zone (locality), "" when unknown. It travels as
	// the zone attribute (attrs.SetZone: metadata key attrs.ZoneKey), which
	// zone-aware routing reads. Metadata[attrs.ZoneKey] is read as the zone
	// too when Zone is empty; see ZoneOf.
	Zone string
}

// ZoneOf returns the zone e carries: Zone, or else Metadata[attrs.ZoneKey].
// Both given and different is an error naming both, since neither can be
// assumed to be the right one; the common layer skips such an endpoint with
// a warning, and a Source may call ZoneOf itself to name the entry at fault.
func (e Endpoint) ZoneOf() (string, error) {
	md := e.Metadata[attrs.ZoneKey]
	switch {
	case e.Zone == "":
		return md, nil
	case md == "" || md == e.Zone:
		return e.Zone, nil
	}
	return "", fmt.Errorf("zone: %q, must equal metadata.%s %q when both are given", e.Zone, attrs.ZoneKey, md)
}

// Update is what a Source reports: either the full current set of
// endpoints, or an error.
type Update struct {
	// Endpoints is the full set (not a delta).
	Endpoints []Endpoint
	// Authoritative says that an empty Endpoints really means "the service
	// has no instances". Without it an empty set is treated as suspicious and
	// the last good set is kept.
	Authoritative bool
	// HoldEmpty says that the set was observed in a registry, which may
	// answer "no instances" for a while when it restarts: an authoritative
	// empty set then takes effect only once the source has kept reporting it
	// for the target's emptyGrace (DefaultEmptyGrace), and the channel keeps
	// its endpoints meanwhile. Without it an authoritative empty set takes
	// effect at once (a static list, a file, a DNS SRV answer of ".").
	HoldEmpty bool
	// Err reports a failure of the source; Endpoints is ignored.
	Err error
}

// Source discovers the endpoints of a named service. Users implement it for
// their own registry and make it available with RegisterSource.
//
// The common layer of the resolver, not the Source, turns reports into
// channel state: it validates, deduplicates and sorts endpoints, pushes only
// real changes, keeps the last good set on errors and on suspicious empty
// sets, and logs. A Source only reports what it sees.
//
// The name a Source receives is the target's path after "<source>/",
// percent-decoded: "services/user" for "fulcrum://etcd/services/user". Query
// parameters that the common layer does not consume (it consumes lkgTTL and emptyGrace) are
// passed on re-encoded after a "?": "services/user?zone=a". A Source should
// reject parameters it does not understand.
//
// report may be called from inside Watch (a static source does) and from any
// goroutine; it never blocks for long and is a no-op once ctx is done.
// resolveNow must not block: it is called from the channel's serializer.
type Source interface {
	// Watch starts watching name and calls report with every new full set of
	// endpoints or with an error, until ctx is done. Watch must return
	// promptly (start a goroutine if needed); all goroutines it starts must
	// have exited by the time the returned stop function returns. resolveNow
	// hints that the channel would like a fresh lookup (may be ignored).
	Watch(ctx context.Context, name string, report func(Update)) (resolveNow func(), stop func(), err error)
}
