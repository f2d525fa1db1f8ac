// Package fulcrumz keeps a registry of every live Fulcrum balancer (each
// gRPC channel using weighted_least_request, each HTTP transport host) and
// serves a snapshot of their decisions: per endpoint its state and why,
// weights, in-flight requests, latency estimate, breaker and last probe.
// It also lists every fulcrum:// resolver (Resolvers): its source, how many
// endpoints it gave the channel, a failing source, and an empty answer
// being held off. Like grpc-go's channelz, it is meant for a debug port:
//
//	mux.Handle("/debug/fulcrum", fulcrumz.Handler())
//
// Balancers register when built and unregister when closed; a snapshot
// reads each engine's state under the engine's own lock, never a picker's:
// it costs requests nothing.
package fulcrumz

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// Channel is the snapshot of one balancer.
type Channel struct {
	// ID is unique among the balancers of the process.
	ID uint64 `json:"id"`
	// Transport is "grpc" or "http".
	Transport string `json:"transport"`
	// Target is the channel's target (or the HTTP host key).
	Target  string    `json:"target"`
	Created time.Time `json:"created"`
	// Config is the configuration in force, as JSON.
	Config json.RawMessage `json:"config,omitempty"`
	// Panic says panic mode is on, and PanicReason why.
	Panic       bool       `json:"panic"`
	PanicReason string     `json:"panicReason,omitempty"`
	Counts      Counts     `json:"counts"`
	Endpoints   []Endpoint `json:"endpoints"`
	// Hedging is the state of hedged requests; absent when the channel or
	// host does not hedge.
	Hedging *Hedging `json:"hedging,omitempty"`
	// Zones is the zone-aware routing; absent without localZone.
	Zones *Zones `json:"zones,omitempty"`
}

// Hedging is the hedging state of a channel or host.
type Hedging struct {
	// DelaySeconds is the current hedging delay; 0 while an adaptive
	// delay has too few samples (calls are not hedged yet).
	DelaySeconds float64 `json:"delaySeconds"`
	// Adaptive says the delay follows recent latencies (else fixed).
	Adaptive bool `json:"adaptive"`
	// Known is false while the adaptive delay waits for samples.
	Known bool `json:"known"`
}

// HedgingFunc returns a balancer's hedging state, nil when it does not
// hedge.
type HedgingFunc func() *Hedging

// Counts are the numbers of endpoints by state at the last decision.
type Counts struct {
	Total        int `json:"total"`
	Usable       int `json:"usable"`
	SlowStart    int `json:"slowStart"`
	KeptByCap    int `json:"keptByCap"`
	Connecting   int `json:"connecting"`
	Disconnected int `json:"disconnected"`
	Warming      int `json:"warming"`
	Unhealthy    int `json:"unhealthy"`
	Ejected      int `json:"ejected"`
}

// Endpoint is one endpoint of a Channel.
type Endpoint struct {
	Addresses []string          `json:"addresses"`
	Zone      string            `json:"zone,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	// Weight is the discovery weight; EffectiveWeight the weight picks
	// use now (slow start applied; 0 when not a candidate).
	Weight          uint32  `json:"weight"`
	EffectiveWeight float64 `json:"effectiveWeight"`
	// State is usable, connecting, disconnected, warming, unhealthy or
	// ejected; Reason says why.
	State     string `json:"state"`
	Reason    string `json:"reason"`
	SlowStart bool   `json:"slowStart"`
	// Candidate says the current picker may choose it.
	Candidate    bool   `json:"candidate"`
	Connectivity string `json:"connectivity"`
	InFlight     int64  `json:"inFlight"`
	// Picks counts requests sent to it since its state was created.
	Picks uint64 `json:"picks"`
	// LatencySeconds is the peak-EWMA latency estimate (0: unknown or
	// latencyAware off).
	LatencySeconds float64    `json:"latencySeconds"`
	Breaker        *Breaker   `json:"breaker,omitempty"`
	LastProbe      *LastProbe `json:"lastProbe,omitempty"`
}

// Breaker is an endpoint's circuit breaker.
type Breaker struct {
	State       string     `json:"state"`
	OpenUntil   *time.Time `json:"openUntil,omitempty"`
	Trips       int        `json:"trips"`
	Transitions uint64     `json:"transitions"`
}

// LastProbe is an endpoint's last health probe.
type LastProbe struct {
	Result          string    `json:"result"`
	Reason          string    `json:"reason"`
	At              time.Time `json:"at"`
	DurationSeconds float64   `json:"durationSeconds"`
}

// ViewFunc returns a balancer's engine state and its configuration in
// force (marshalled to JSON in snapshots). It is called on the goroutine
// taking the snapshot; it must not block for long.
type ViewFunc func() (v endpointset.View, config any, ok bool)

type entry struct {
	id                uint64
	transport, target string
	created           time.Time
	view              ViewFunc
	hedging           HedgingFunc // may be nil
}

var (
	mu      sync.Mutex
	nextID  uint64
	entries = map[uint64]*entry{}
)

// Register adds a live balancer of transport ("grpc", "http") for target.
// unregister (idempotent) removes it; call it when the balancer closes.
// view returning ok false (no configuration yet) leaves the balancer out
// of snapshots.
func Register(transport, target string, view ViewFunc) (unregister func()) {
	return RegisterHedged(transport, target, view, nil)
}

// RegisterHedged is Register for a balancer that may hedge: snapshots
// include what hedging returns (nil: none).
func RegisterHedged(transport, target string, view ViewFunc, hedging HedgingFunc) (unregister func()) {
	mu.Lock()
	nextID++
	e := &entry{id: nextID, transport: transport, target: target, created: time.Now(), view: view, hedging: hedging}
	entries[e.id] = e
	mu.Unlock()
	return func() {
		mu.Lock()
		delete(entries, e.id)
		mu.Unlock()
	}
}

// Snapshot returns the state of every live balancer, by target then ID.
func Snapshot() []Channel {
	mu.Lock()
	es := make([]*entry, 0, len(entries))
	for _, e := range entries {
		es = append(es, e)
	}
	mu.Unlock()
	slices.SortFunc(es, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.target, b.target), cmp.Compare(a.id, b.id))
	})
	out := make([]Channel, 0, len(es))
	for _, e := range es {
		v, cfg, ok := e.view()
		if !ok {
			continue
		}
		ch := convert(e, v, cfg)
		if e.hedging != nil {
			ch.Hedging = e.hedging()
		}
		out = append(out, ch)
	}
	return out
}

func convert(e *entry, v endpointset.View, cfg any) Channel {
	c := v.Counts
	ch := Channel{
		ID: e.id, Transport: e.transport, Target: e.target, Created: e.created,
		Panic: v.Panic, PanicReason: v.PanicReason,
		Counts: Counts{
			Total: c.Total, Usable: c.Usable, SlowStart: c.Ramping, KeptByCap: c.KeptByCap,
			Connecting: c.Connecting, Disconnected: c.Disconnected, Warming: c.Warming,
			Unhealthy: c.Unhealthy, Ejected: c.Ejected,
		},
		Endpoints: make([]Endpoint, 0, len(v.Endpoints)),
		Zones:     convertZones(v.Zones),
	}
	if cfg != nil {
		if b, err := json.Marshal(cfg); err == nil {
			ch.Config = b
		}
	}
	for _, ev := range v.Endpoints {
		ep := Endpoint{
			Addresses: ev.Addrs, Zone: ev.Zone, Metadata: ev.Metadata,
			Weight: ev.Weight, EffectiveWeight: ev.EffectiveWeight,
			State: ev.State.String(), Reason: ev.Reason, SlowStart: ev.Ramping, Candidate: ev.Picked,
			Connectivity: ev.Conn.String(), InFlight: ev.InFlight, Picks: ev.Picks,
			LatencySeconds: ev.Latency.Seconds(),
		}
		if b := ev.Breaker; b != nil {
			ep.Breaker = &Breaker{State: b.State.String(), Trips: b.Trips, Transitions: b.Transitions}
			if !b.OpenUntil.IsZero() {
				t := b.OpenUntil
				ep.Breaker.OpenUntil = &t
			}
		}
		if p := ev.Probe; p != nil {
			ep.LastProbe = &LastProbe{Result: p.Outcome, Reason: p.Reason, At: p.At, DurationSeconds: p.Duration.Seconds()}
		}
		ch.Endpoints = append(ch.Endpoints, ep)
	}
	return ch
}
