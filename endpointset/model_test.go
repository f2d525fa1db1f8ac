package endpointset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// TestModel drives the real engine (and the real picker and breakers, on
// the engine's fake clock) with seeded random sequences of events —
// resolver updates (add, remove, reweight), connectivity changes, new
// connections, probe verdicts, requests with every kind of outcome, time
// passing, configuration changes — and checks the engine's invariants
// after every decision. On failure it prints the seed and the shortest
// failing prefix of that seed's sequence.
//
// FULCRUM_MODEL_SEQS sets the number of sequences (default 2000); a long
// run: FULCRUM_MODEL_SEQS=200000 go test -run TestModel ./endpointset
func TestModel(t *testing.T) {
	seqs := 2000
	if v, err := strconv.Atoi(os.Getenv("FULCRUM_MODEL_SEQS")); err == nil && v > 0 {
		seqs = v
	}
	const steps = 60
	for seed := uint64(1); seed <= uint64(seqs); seed++ {
		at, msg := runModel(seed, steps)
		if at < 0 {
			continue
		}
		// Shortest failing prefix: the sequence is a function of the
		// seed, so its first k steps are the same for every k.
		for k := 1; k <= at; k++ {
			if a, m := runModel(seed, k); a >= 0 {
				at, msg = a, m
				break
			}
		}
		t.Fatalf("seed %d: invariant broken after step %d (shortest failing prefix: %d steps): %s", seed, at, at+1, msg)
	}
}

type outstanding struct {
	p   *picker.Picker
	i   int
	tok picker.Token
	hot *picker.Endpoint
}

// runModel runs steps events of seed's sequence and returns the index of
// the first step after which an invariant fails (and why), or -1.
func runModel(seed uint64, steps int) (int, string) {
	rng := rand.New(rand.NewPCG(seed, 0xf00d))
	clk := &clock{t: time.Unix(1_000_000, 0)}
	cfg := DefaultConfig()
	bc := breaker.DefaultConfig()
	bc.ConsecutiveFailures = 1 + rng.IntN(4)
	bc.OpenDuration = config.Duration(time.Duration(1+rng.IntN(5)) * time.Second)
	// Trials that outlive their timeout while nothing calls the breaker
	// (issue 21 defect a): time passes by up to 3s a step, requests stay
	// in flight across steps.
	bc.TrialTimeout = config.Duration(time.Duration(100+rng.IntN(2900)) * time.Millisecond)
	opts := Options{Probing: rng.IntN(4) > 0, Warmup: rng.IntN(2) == 0, Breaker: &bc, Now: clk.now}
	s := New(cfg, opts)
	keys := []string{"a", "b", "c", "d", "e", "f"}
	weights := map[string]uint32{}
	present := map[string]bool{}
	// Zones: the client's, another, and none; the client is in "z1" or
	// zone-unaware.
	zoneNames := []string{"z1", "z2", ""}
	zones := map[string]string{}
	for _, k := range keys {
		zones[k] = zoneNames[rng.IntN(len(zoneNames))]
	}
	if rng.IntN(3) > 0 {
		cfg.LocalZone = "z1"
		s.SetConfig(cfg, opts)
	}
	var live []outstanding
	var last Decision
	update := func() {
		var specs []Spec
		for _, k := range keys {
			if present[k] {
				specs = append(specs, Spec{Key: k, Weight: weights[k], Zone: zones[k]})
			}
		}
		s.Update(specs)
	}
	for _, k := range keys[:1+rng.IntN(len(keys))] {
		present[k], weights[k] = true, uint32(1+rng.IntN(5))
	}
	update()
	for step := 0; step < steps; step++ {
		recs := s.Records()
		var r *Record
		if len(recs) > 0 {
			r = recs[rng.IntN(len(recs))]
		}
		switch ev := rng.IntN(12); {
		case ev == 0: // resolver: add, remove or reweight one endpoint
			k := keys[rng.IntN(len(keys))]
			switch rng.IntN(4) {
			case 0:
				present[k] = !present[k]
			case 1:
				zones[k] = zoneNames[rng.IntN(len(zoneNames))]
			default:
				weights[k] = uint32(1 + rng.IntN(10))
			}
			if weights[k] == 0 {
				weights[k] = 1
			}
			update()
		case ev <= 2 && r != nil: // connectivity
			c := Conn(rng.IntN(4))
			if c == ConnReady {
				s.NewConnection(r)
			}
			s.SetConn(r, c)
		case ev <= 4 && r != nil: // probe verdict, including timeouts
			s.SetHealth(r, rng.IntN(3) > 0, "probe")
		case ev <= 7: // requests through the current picker
			if len(last.Entries) == 0 {
				break
			}
			p := last.Picker(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(time.Second)})
			for range 1 + rng.IntN(8) {
				i, tok, err := p.Select()
				if err != nil {
					break
				}
				live = append(live, outstanding{p, i, tok, p.Entry(i).Endpoint})
			}
			for len(live) > 0 && rng.IntN(3) > 0 {
				j := rng.IntN(len(live))
				o := live[j]
				live = append(live[:j], live[j+1:]...)
				if rng.IntN(10) == 0 {
					o.p.Abort(o.i, o.tok)
					continue
				}
				o.p.Finish(o.i, o.tok, picker.Outcome{Verdict: picker.Verdict(rng.IntN(3)), Timing: picker.Timing(rng.IntN(3))})
			}
		case ev <= 9: // time passes, up to past the next decision
			d := time.Duration(rng.IntN(3000)) * time.Millisecond
			if !last.Next.IsZero() && rng.IntN(2) == 0 {
				d = last.Next.Sub(clk.now())
			}
			clk.advance(max(d, 0))
		case ev == 10: // configuration change
			cfg.PanicThresholdPercent = float64(rng.IntN(5) * 25)
			cfg.MaxEjectionPercent = float64(rng.IntN(5) * 25)
			cfg.SlowStart.Window = config.Duration(time.Duration(rng.IntN(3)) * 5 * time.Second)
			opts.Probing = rng.IntN(4) > 0
			cfg.LocalZone = []string{"", "z1"}[rng.IntN(2)]
			s.SetConfig(cfg, opts)
		}
		last = s.Decide()
		if msg := checkInvariants(s, last, cfg, opts, clk.now()); msg != "" {
			return step, msg
		}
	}
	for _, o := range live {
		o.p.Finish(o.i, o.tok, picker.Outcome{})
	}
	for _, r := range s.Records() {
		if n := r.Hot.InFlight(); n != 0 {
			return steps - 1, fmt.Sprintf("%s: %d in flight after every request ended", r.Key, n)
		}
	}
	return -1, ""
}

func checkInvariants(s *Set, d Decision, cfg Config, opts Options, now time.Time) string {
	recs := s.Records()
	// "Next is never in the past": a Next at or before now makes the
	// adapter decide again at once, for ever (issue 21 defect a).
	if !d.Next.IsZero() && !d.Next.After(now) {
		return fmt.Sprintf("Next %v is not after now %v", d.Next, now)
	}
	connected, pending, warming, trials := 0, 0, 0, 0
	var latestEjection, earliestKept int64 = -1 << 63, 1<<63 - 1
	for i, r := range recs {
		res := d.Results[i]
		if r.conn == ConnReady {
			connected++
		}
		if res.State == Connecting || res.State == Warming {
			pending++
		}
		if res.State == Warming {
			warming++
		}
		snap := r.Hot.Breaker().Snapshot()
		until := s.epoch.Add(time.Duration(snap.Until))
		if res.State == Ejected {
			if snap.State != breaker.Open || !until.After(now) {
				return fmt.Sprintf("%s ejected but its breaker is %v until %v (now %v)", r.Key, snap.State, until, now)
			}
			if d.Next.IsZero() || d.Next.After(until) {
				return fmt.Sprintf("%s ejected until %v but the next decision is %v", r.Key, until, d.Next)
			}
			latestEjection = max(latestEjection, snap.Since)
		}
		open := snap.State == breaker.Open && until.After(now)
		if res.State == Usable && open {
			earliestKept = min(earliestKept, snap.Since) // kept in rotation by the cap
		}
		onTrial := res.State == Usable && snap.State != breaker.Closed && !open
		if onTrial != res.Trial {
			return fmt.Sprintf("%s: trial %v, breaker %+v at %v", r.Key, res.Trial, snap, now)
		}
		if onTrial {
			trials++
		}
		if res.Ramping && (d.Next.IsZero() || d.Next.After(now.Add(time.Second))) {
			return fmt.Sprintf("%s ramping but the next decision is %v", r.Key, d.Next)
		}
	}
	// The ejection cap keeps the earliest trips (issue 21 defect h).
	if earliestKept < latestEjection {
		return fmt.Sprintf("an endpoint tripped at %d is kept in rotation while one tripped at %d is ejected", earliestKept, latestEjection)
	}
	for i, e := range d.Entries {
		rec := d.Records[i]
		res := s.Results()[rec.Key]
		if d.Panic {
			if rec.conn != ConnReady || res.State == Warming {
				return fmt.Sprintf("panic mode picks %s, which is %v (%v)", rec.Key, res.State, rec.conn)
			}
		} else if res.State != Usable {
			return fmt.Sprintf("%s is a candidate but %v (%s)", rec.Key, res.State, res.Reason)
		}
		w := float64(rec.spec.Weight)
		if e.Weight > w || e.Weight < w*cfg.SlowStart.MinWeightPercent/100-1e-9 {
			return fmt.Sprintf("%s effective weight %v outside [%v, %v]", rec.Key, e.Weight, w*cfg.SlowStart.MinWeightPercent/100, w)
		}
	}
	usable := d.Counts.Usable
	considered := len(recs) - pending
	below := func(n int) bool {
		return cfg.PanicThresholdPercent > 0 && considered > 0 && connected-warming > 0 &&
			float64(n)*100 < cfg.PanicThresholdPercent*float64(considered)
	}
	if d.Panic != below(usable) {
		return fmt.Sprintf("panic = %v with %d usable of %d considered (threshold %g)", d.Panic, usable, considered, cfg.PanicThresholdPercent)
	}
	// Breakers on trial: every request admitted while the proven share
	// is below the threshold (issue 21 defect c), otherwise one trial at
	// a time, and a trial in flight that holds the next back is decided
	// again at its timeout.
	admitAll := below(usable - trials)
	for i, e := range d.Entries {
		rec := d.Records[i]
		br := rec.Hot.Breaker()
		snap := br.Snapshot()
		if !e.Gated || !s.Results()[rec.Key].Trial {
			continue
		}
		if admitAll && !br.Admits() {
			return fmt.Sprintf("%s on trial refuses requests while only %d of %d considered are proven", rec.Key, usable-trials, considered)
		}
		if !admitAll && snap.State == breaker.HalfOpen && snap.TrialInFlight {
			due := s.epoch.Add(time.Duration(snap.TrialAt) + time.Duration(opts.Breaker.TrialTimeout))
			if due.After(now) && (d.Next.IsZero() || d.Next.After(due)) {
				return fmt.Sprintf("%s has a trial in flight until %v but the next decision is %v", rec.Key, due, d.Next)
			}
		}
	}
	if msg := checkZones(recs, s.Results(), d, cfg); msg != "" {
		return msg
	}
	if usable > 0 && (len(d.Entries) == 0 || d.Wait || d.Err != nil) {
		return fmt.Sprintf("%d usable but entries %d wait %v err %v", usable, len(d.Entries), d.Wait, d.Err)
	}
	if len(d.Entries) == 0 && !d.Wait && d.Err == nil {
		return "no candidates, no wait and no error"
	}
	return ""
}

// checkZones checks the zone split: local candidates first; no spill
// while every proven local endpoint is usable; the spill is the health
// shortfall (1 - 1.4 h), which never exceeds the shortfall itself (1 - h);
// and no zone routing in panic mode or without a local zone.
func checkZones(recs []*Record, results map[string]Result, d Decision, cfg Config) string {
	z := d.Zone
	if cfg.LocalZone == "" || d.Panic || len(d.Entries) == 0 {
		if z != (ZoneSplit{}) {
			return fmt.Sprintf("zone split %+v without zone routing (localZone %q, panic %v, %d candidates)", z, cfg.LocalZone, d.Panic, len(d.Entries))
		}
		return ""
	}
	local := 0
	for i, r := range d.Records {
		in := r.spec.Zone == cfg.LocalZone
		if in {
			local++
		}
		if in != (i < z.Local) {
			return fmt.Sprintf("candidate %d (%s, zone %q) is on the wrong side of Local %d", i, r.Key, r.spec.Zone, z.Local)
		}
	}
	if local != z.Local {
		return fmt.Sprintf("Local %d, but %d candidates are in the local zone", z.Local, local)
	}
	var total, usable float64
	for _, r := range recs {
		res := results[r.Key]
		if r.spec.Zone != cfg.LocalZone || res.State == Connecting || res.State == Warming {
			continue
		}
		total += float64(r.spec.Weight)
		if res.State == Usable && !res.Kept {
			usable += float64(r.spec.Weight)
		}
	}
	want := 0.0
	switch {
	case local == 0:
		want = 1
	case local < len(d.Records) && total > 0:
		want = max(0, 1-1.4*usable/total)
		if z.Spill > 1-usable/total+1e-9 {
			return fmt.Sprintf("spill %v exceeds the shortfall %v", z.Spill, 1-usable/total)
		}
	}
	if math.Abs(z.Spill-want) > 1e-9 {
		return fmt.Sprintf("spill %v, want %v (local weight %v usable of %v, %d local of %d candidates)", z.Spill, want, usable, total, local, len(d.Records))
	}
	if z.Aware != (local > 0 && local < len(d.Records)) {
		return fmt.Sprintf("aware %v with %d local of %d candidates", z.Aware, local, len(d.Records))
	}
	return ""
}
