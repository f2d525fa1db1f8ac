package metrics

import (
	"math"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// Channel records the balancer metrics of one channel (gRPC) or host
// (HTTP): the adapter calls its methods on events; the gauges are read from
// counts at collection time. Its methods are safe for concurrent use.
type Channel struct {
	// Read-only after NewChannel.
	rec        Recorder
	target     string
	unregister func()

	zones func() endpointset.ZoneReport

	mu       sync.Mutex
	panicked bool      // the last decision was in panic mode
	picked   [2]uint64 // local and remote picks already added to ZonePicks
}

// gaugeStates maps endpoint_state label values to Counts.
var gaugeStates = []struct {
	label string
	count func(endpointset.Counts) int
}{
	{"usable", func(c endpointset.Counts) int { return c.Usable }},
	{"slow_start", func(c endpointset.Counts) int { return c.Ramping }},
	{"connecting", func(c endpointset.Counts) int { return c.Connecting }},
	{"disconnected", func(c endpointset.Counts) int { return c.Disconnected }},
	{"warming", func(c endpointset.Counts) int { return c.Warming }},
	{"unhealthy", func(c endpointset.Counts) int { return c.Unhealthy }},
	{"ejected", func(c endpointset.Counts) int { return c.Ejected }},
}

// StateLabels returns the values of LabelEndpointState, in report order.
func StateLabels() []string {
	var s []string
	for _, g := range gaugeStates {
		s = append(s, g.label)
	}
	return s
}

// NewChannel starts recording the metrics of the channel or host target.
// counts returns the engine's last decision's counts
// (endpointset.Set.Counts); ok false (no engine yet) reports no gauges.
// zones (nil: none) returns the engine's zone routing (Set.Zones). Call
// Close when the channel closes.
func NewChannel(rec Recorder, target string, counts func() (c endpointset.Counts, ok bool), zones func() endpointset.ZoneReport) *Channel {
	ch := &Channel{rec: rec, target: target, zones: zones}
	ch.unregister = rec.RegisterGauges(func(set func(*Metric, int64, ...string)) {
		c, ok := counts()
		if !ok {
			return
		}
		if z, ok := ch.addZonePicks(); ok {
			set(ZoneSpill, int64(math.Round(100*z.Split.Spill)), target)
		}
		for _, g := range gaugeStates {
			set(Endpoints, int64(g.count(c)), target, g.label)
		}
		set(EjectionsActive, int64(c.Ejected), target)
		// Panic mode's gauge follows the decisions this Channel has
		// recorded, not the engine's last one, so that a collection
		// between the engine's decision and Decided never shows panic
		// mode on while its counter has not yet counted the entry.
		p := int64(0)
		ch.mu.Lock()
		if ch.panicked {
			p = 1
		}
		ch.mu.Unlock()
		set(PanicActive, p, target)
	}, Endpoints, EjectionsActive, PanicActive, ZoneSpill)
	return ch
}

// addZonePicks adds the picks by locality counted since the last call to
// ZonePicks. ok is false when the channel is zone-unaware.
func (ch *Channel) addZonePicks() (z endpointset.ZoneReport, ok bool) {
	if ch.zones == nil {
		return z, false
	}
	if z = ch.zones(); z.LocalZone == "" {
		return z, false
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for i, n := range []uint64{z.LocalPicks, z.RemotePicks} {
		if d := n - ch.picked[i]; n > ch.picked[i] {
			ch.rec.Add(ZonePicks, int64(d), ch.target, [...]string{"local", "remote"}[i])
			ch.picked[i] = n
		}
	}
	return z, true
}

// Decided records a decision of the engine: counts panic mode entered
// (the counter is added before the gauge's state turns on) and adds the
// picks by locality. Decided is called from one goroutine (the driver's).
func (ch *Channel) Decided(d *endpointset.Decision) {
	ch.addZonePicks()
	ch.mu.Lock()
	entered := d.Panic && !ch.panicked
	ch.mu.Unlock()
	if entered {
		ch.rec.Add(PanicEntered, 1, ch.target)
	}
	ch.mu.Lock()
	ch.panicked = d.Panic
	ch.mu.Unlock()
}

var breakerLabels = map[breaker.State]string{breaker.Closed: "closed", breaker.Open: "open", breaker.HalfOpen: "half_open"}

// BreakerChanged records a breaker transition (endpointset's
// Options.OnBreakerChange).
func (ch *Channel) BreakerChanged(_ string, _, to breaker.State) {
	if l, ok := breakerLabels[to]; ok {
		ch.rec.Add(BreakerTransitions, 1, ch.target, l)
	}
}

// NoUsableEndpoint records a pick that failed because no endpoint was
// usable.
func (ch *Channel) NoUsableEndpoint() {
	ch.rec.Add(NoUsableEndpoint, 1, ch.target)
}

// Probe records one completed health probe; result is a value of
// LabelProbeResult.
func (ch *Channel) Probe(result string, d time.Duration) {
	ch.rec.Add(Probes, 1, ch.target, result)
	ch.rec.Record(ProbeDuration, d.Seconds(), ch.target)
}

// Retried records one retry of a request (HTTP transport).
func (ch *Channel) Retried() {
	ch.rec.Add(Retries, 1, ch.target)
}

// RetryRejected records a retry refused by the retry budget (HTTP
// transport).
func (ch *Channel) RetryRejected() {
	ch.rec.Add(RetryBudgetRejections, 1, ch.target)
}

// HedgeSent records one hedged attempt sent (hedge.Observer).
func (ch *Channel) HedgeSent() { ch.rec.Add(HedgesSent, 1, ch.target) }

// HedgeWon records a hedged attempt whose result was the call's.
func (ch *Channel) HedgeWon() { ch.rec.Add(HedgesWon, 1, ch.target) }

// HedgeRefused records a hedge refused by the budget.
func (ch *Channel) HedgeRefused() { ch.rec.Add(HedgeBudgetRejections, 1, ch.target) }

// Close stops reporting the channel's gauges.
func (ch *Channel) Close() { ch.unregister() }
