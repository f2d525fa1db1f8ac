// Package endpointset is Fulcrum's transport-neutral engine: it owns the
// record of every endpoint of one channel (gRPC) or host (HTTP) —
// weight, connectivity, probe verdict and warm-up, slow-start ramp, and the
// shared picker state (in-flight, latency, breaker) — and decides, as a
// pure function of those records, the configuration and the time, which
// endpoints are usable, whether panic mode is on, what the ejection cap
// keeps in rotation, the effective weights, why each endpoint is in its
// state, and when the decision must be made again.
//
// It knows nothing of grpc-go or net/http. An adapter translates its
// transport's events into Set calls (Update, SetConn, SetHealth), calls
// Decide after each batch of events and again at Decision.Next (one timer),
// and publishes a picker over Decision.Entries. Selection itself belongs to
// package picker.
package endpointset

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// Options are the parts of an adapter's configuration the engine needs
// besides Config.
type Options struct {
	// Probing says that the adapter runs an active health probe on every
	// connection and reports verdicts with SetHealth.
	Probing bool
	// Warmup holds a new or reconnected endpoint back until its first
	// successful probe (only with Probing).
	Warmup bool
	// Breaker configures a breaker per endpoint; nil means none.
	Breaker *breaker.Config
	// OnChange is called, from any goroutine and without the Set's lock,
	// when something changed that Decide must see (a breaker transition, a
	// half-open trial ending). It must not block; adapters use it to
	// schedule a Decide. Only New's is used.
	OnChange func()
	// Now is the clock; nil means time.Now. The breakers use it too (with
	// nil, they read only the monotonic clock: a breaker reads the time on
	// every request that ends, and time.Now also reads the wall clock).
	Now func() time.Time
	// Logger receives the engine's log lines: endpoint state changes and
	// breaker transitions (Infof, or Warningf when an endpoint leaves
	// rotation), panic mode's start (Warningf) and end. nil logs nothing.
	// It is fixed at New (SetConfig ignores it). The adapters pass
	// grpclog's "fulcrum" component; the engine imports nothing of
	// grpc-go.
	Logger Logger
	// LogPrefix starts every log line (e.g. "[fulcrum 0xc000123] ").
	LogPrefix string
	// OnBreakerChange, if set, is called like OnChange with the endpoint's
	// key and the breaker's transition (for metrics). It runs inside a
	// request's Select or Finish: it must be cheap and must not block.
	// It is fixed at New (SetConfig ignores it).
	OnBreakerChange func(key string, from, to breaker.State)
}

// Logger is where a Set logs. Each call is one complete line, already
// prefixed with Options.LogPrefix. grpclog's component loggers satisfy it.
type Logger interface {
	Infof(format string, args ...any)
	Warningf(format string, args ...any)
}

// Set is the engine of one channel or host. Its methods are safe for
// concurrent use; none blocks for long or calls out while holding its lock
// (except Options.Now).
type Set struct {
	// Read-only after New.
	now       func() time.Time
	epoch     time.Time
	mono      bool                                     // now is time.Now: brClock may use time.Since
	onChange  func()                                   // Options.OnChange of New (SetConfig keeps it)
	prefix    string                                   // Options.LogPrefix of New
	log       Logger                                   // Options.Logger of New; nil: silent
	onBreaker func(key string, from, to breaker.State) // Options.OnBreakerChange

	mu       sync.Mutex
	seq      uint64 // decisions made
	cfg      Config
	opts     Options
	recs     map[string]*Record
	sorted   []*Record // by key
	gotFirst bool
	removed  map[string]removal // endpoints removed recently, by key (see removed.go)
	removals uint64             // removals remembered so far: their order
	// maxRemoved bounds removed: maxRemoved, or less in tests.
	maxRemoved int
	panicking  bool
	counts     Counts // of the last decision
	zone       ZoneSplit
	held       bool                   // see SetHeld
	locality   *picker.LocalityCounts // counts of the zone-aware pickers
}

// New returns an empty Set.
func New(cfg Config, opts Options) *Set {
	now, mono := opts.Now, opts.Now == nil
	epoch := time.Time{}
	if mono {
		// Breakers read the picker's clock, which Finish reads anyway.
		now, epoch = time.Now, picker.ClockBase()
	} else {
		epoch = now()
	}
	return &Set{now: now, epoch: epoch, mono: mono, onChange: opts.OnChange, prefix: opts.LogPrefix, log: opts.Logger, maxRemoved: maxRemoved, locality: new(picker.LocalityCounts), onBreaker: opts.OnBreakerChange, cfg: cfg, opts: opts, recs: make(map[string]*Record)}
}

func (s *Set) infof(format string, args ...any) {
	if s.log != nil {
		s.log.Infof("%s", s.prefix+fmt.Sprintf(format, args...))
	}
}

func (s *Set) warningf(format string, args ...any) {
	if s.log != nil {
		s.log.Warningf("%s", s.prefix+fmt.Sprintf(format, args...))
	}
}

// SetConfig applies a new configuration. A change of the breaker
// configuration gives every endpoint a fresh breaker (and fresh picker
// state: requests in flight on the old one still finish on it). A change of
// probing leaves verdicts alone: a restarted prober reports again.
func (s *Set) SetConfig(cfg Config, opts Options) {
	s.mu.Lock()
	defer s.mu.Unlock()
	brChanged := !breakerEqual(s.opts.Breaker, opts.Breaker)
	if opts.Probing && !s.opts.Probing {
		// Probing turned on: connections that were serving unprobed are
		// not held back for warm-up.
		for _, r := range s.sorted {
			r.warmed = r.warmed || r.conn == ConnReady
		}
	}
	opts.Now, opts.LogPrefix, opts.OnChange, opts.Logger = s.opts.Now, s.opts.LogPrefix, s.opts.OnChange, s.opts.Logger
	s.cfg, s.opts = cfg, opts
	if brChanged {
		for _, r := range s.sorted {
			r.Hot = s.newHotLocked(r.Key)
		}
		s.forgetBreakersLocked()
	}
}

func breakerEqual(a, b *breaker.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// brClock is the breakers' clock: nanoseconds since the Set's epoch on the
// Set's clock, so that a fake clock drives breakers and decisions alike.
// On the real clock it is the picker's (monotonic nanoseconds since
// picker.ClockBase, which is then the epoch): the same instants as
// now().Sub(epoch) for one clock read instead of time.Now's two, and Finish
// hands the breaker the reading it took for the latency estimate.
func (s *Set) brClock() int64 {
	if s.mono {
		return picker.Nanotime()
	}
	return int64(s.now().Sub(s.epoch))
}

func (s *Set) newHotLocked(key string) *picker.Endpoint {
	if s.opts.Breaker == nil {
		return picker.NewEndpoint(key, nil)
	}
	onChange := func(from, to breaker.State, reason string) {
		// Runs inside a pick or a request's end: log, ask for a decision.
		s.infof("endpoint %s: breaker %v -> %v: %s", key, from, to, reason)
		if s.onBreaker != nil {
			s.onBreaker(key, from, to)
		}
		if s.onChange != nil {
			s.onChange()
		}
	}
	br := breaker.New(*s.opts.Breaker, s.brClock, onChange)
	br.OnTrialEnd(func() {
		if s.onChange != nil {
			s.onChange()
		}
	})
	ep := picker.NewEndpoint(key, br)
	if s.mono {
		ep.ShareClock()
	}
	return ep
}

// Update reconciles the records with a resolver update (the full set).
// It returns the records it created and those it removed; the adapter
// creates and closes its per-endpoint data accordingly. Records of
// endpoints still present are kept, with their new weight and metadata.
func (s *Set) Update(specs []Spec) (added, removed []*Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireRemovedLocked(now)
	first := !s.gotFirst
	s.gotFirst = true
	seen := make(map[string]bool, len(specs))
	for _, sp := range specs {
		if sp.Key == "" || seen[sp.Key] {
			continue
		}
		seen[sp.Key] = true
		r, ok := s.recs[sp.Key]
		if !ok {
			// Endpoints of the first update were serving before this
			// channel existed, and one re-added soon after it left (churn
			// in the registry) was serving a moment ago: neither ramps
			// on its first connection. One re-added within the breaker's
			// memory gets its picker state and breaker back.
			rm, recent := s.removed[sp.Key]
			delete(s.removed, sp.Key)
			hot := rm.hot
			if hot == nil {
				hot = s.newHotLocked(sp.Key)
			}
			r = &Record{Key: sp.Key, Hot: hot, rampNext: !first && !(recent && rm.usable)}
			s.recs[sp.Key] = r
			added = append(added, r)
		}
		r.spec = sp
		r.spec.Addrs = slices.Clone(sp.Addrs)
	}
	for k, r := range s.recs {
		if seen[k] {
			continue
		}
		delete(s.recs, k)
		s.rememberLocked(r, now)
		removed = append(removed, r)
	}
	if len(added) > 0 || len(removed) > 0 {
		s.sorted = s.sorted[:0]
		for _, r := range s.recs {
			s.sorted = append(s.sorted, r)
		}
		slices.SortFunc(s.sorted, func(a, b *Record) int { return strings.Compare(a.Key, b.Key) })
	}
	return added, removed
}

// SetHeld says whether the endpoints are held against an empty answer of
// their registry (the resolver's emptyGrace, attrs.EmptyHeld): the
// registry says the service has none, and the resolver keeps them for a
// while in case it is restarting. While held and none is usable, requests
// fail at once (Decision.Err says why) instead of going to the held
// endpoints in panic mode or waiting for them to reconnect.
func (s *Set) SetHeld(held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = held
}

// Decide makes the decision at the Set's clock's now, remembers it for
// reports, and logs what changed (once per change).
func (s *Set) Decide() Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := params{probing: s.opts.Probing, warmup: s.opts.Warmup, now: s.now(), epoch: s.epoch, held: s.held}
	if s.opts.Breaker != nil {
		pr.trialTimeout = time.Duration(s.opts.Breaker.TrialTimeout)
	}
	d := decide(s.sorted, s.cfg, pr)
	s.seq++
	d.Seq = s.seq
	d.Records = slices.Clip(d.Records)
	for i, r := range s.sorted {
		res := d.Results[i]
		// A record's first decision is logged too (from "new"), unless it
		// is only connecting; Usable is the zero State, so a new endpoint
		// usable at once would otherwise join without a line.
		if (r.decided && r.last.State != res.State) || (!r.decided && res.State != Connecting) {
			from := r.last.State.String()
			if !r.decided {
				from = "new"
			}
			if res.State == Usable || res.State == Warming || res.State == Connecting {
				s.infof("endpoint %s: %s -> %s: %s", r.Key, from, res.State, res.Reason)
			} else {
				s.warningf("endpoint %s: %s -> %s: %s", r.Key, from, res.State, res.Reason)
			}
		}
		r.last, r.decided = res, true
	}
	s.counts = d.Counts
	if d.Zone != (ZoneSplit{}) {
		d.Zone.Counts = s.locality
	}
	s.zone = d.Zone
	for i, r := range s.sorted {
		// Breakers on trial admit every request while the proven
		// endpoints are too few (see decide), otherwise one trial at a
		// time.
		if br := r.Hot.Breaker(); br != nil {
			res := &d.Results[i]
			br.SetAdmitAll(d.admitAll && res.Picked && res.Gated && res.Trial)
		}
	}
	if d.Panic != s.panicking {
		s.panicking = d.Panic
		c := d.Counts
		if d.Panic {
			s.warningf("panic mode: %d of %d endpoints usable (%d unhealthy, %d ejected by breaker, %d not connected), below panicThresholdPercent %g; picking among all %d connected endpoints",
				c.Usable, c.Total, c.Unhealthy, c.Ejected, c.Disconnected, s.cfg.PanicThresholdPercent, len(d.Entries))
		} else {
			s.infof("panic mode over: %d of %d endpoints usable", c.Usable, c.Total)
		}
	}
	return d
}
