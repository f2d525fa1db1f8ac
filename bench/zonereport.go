package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// zoneCell is the raw outcome of a run with zones: the application RPCs
// each backend's server received, per bucket of the measured part.
type zoneCell struct {
	zones  []string
	phases []zonePhase
	dur    time.Duration // measured part, every phase
	bucket time.Duration
	hits   [][]int64 // [backend][bucket]; nil where a backend counted none
}

// ZoneResult is one policy's outcome in a scenario with zones, phase by
// phase. Local shares are counted by the servers, success and latency by
// the client (by scheduled arrival).
type ZoneResult struct {
	LocalZone string  `json:"localZone"`
	BucketMs  float64 `json:"bucketMs"`
	// LocalPct is the local share of each bucket, -1 where the servers
	// received nothing.
	LocalPct []float64     `json:"localPctPerBucket"`
	Phases   []PhaseResult `json:"phases"`
}

// PhaseResult is one phase of a ZoneResult. Latencies in milliseconds
// over every completed RPC of the phase, failed ones included.
type PhaseResult struct {
	Name       string           `json:"name"`
	Fault      bool             `json:"fault"`
	FromS      float64          `json:"fromS"`
	ToS        float64          `json:"toS"`
	Total      int64            `json:"total"` // arrivals, dropped included
	OK         int64            `json:"ok"`
	SuccessPct float64          `json:"successPct"`
	P50        float64          `json:"p50Ms"`
	P99        float64          `json:"p99Ms"`
	LocalPct   float64          `json:"localPct"`
	ByZone     map[string]int64 `json:"byZone"`
	// For a healthy phase after a fault: BackS is when the first bucket
	// with a local share of at least recoveredPct starts, from the start
	// of the phase, and LocalAfterPct the local share from there to the
	// end of the phase; both -1 when no bucket got there.
	AfterFault    bool    `json:"afterFault,omitempty"`
	BackS         float64 `json:"backS,omitempty"`
	LocalAfterPct float64 `json:"localAfterPct,omitempty"`
}

func (z *zoneCell) result(rec *recorder) *ZoneResult {
	n := int(z.dur/z.bucket) + 1
	loc, all := make([]int64, n), make([]int64, n)
	byZone := make([]map[string]int64, n)
	for i := range n {
		byZone[i] = map[string]int64{}
		for b, h := range z.hits {
			if i < len(h) {
				byZone[i][z.zones[b]] += h[i]
				all[i] += h[i]
				if z.zones[b] == localZone {
					loc[i] += h[i]
				}
			}
		}
	}
	pct := func(a, b int64) float64 {
		if b == 0 {
			return -1
		}
		return 100 * float64(a) / float64(b)
	}
	zr := &ZoneResult{LocalZone: localZone, BucketMs: float64(z.bucket) / float64(time.Millisecond)}
	for i := range n {
		zr.LocalPct = append(zr.LocalPct, pct(loc[i], all[i]))
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	p := z.dur / time.Duration(len(z.phases))
	for k, ph := range z.phases {
		from, to := time.Duration(k)*p, time.Duration(k+1)*p
		in := func(i int, width time.Duration) bool {
			t := time.Duration(i) * width
			return t >= from && t < to
		}
		pr := PhaseResult{Name: ph.name, Fault: ph.fault, FromS: from.Seconds(), ToS: to.Seconds(), ByZone: map[string]int64{}}
		var l, a int64
		for i := range n {
			if in(i, z.bucket) {
				l, a = l+loc[i], a+all[i]
				for zn, c := range byZone[i] {
					pr.ByZone[zn] += c
				}
			}
		}
		pr.LocalPct = pct(l, a)
		var lats []float64
		for i := range rec.buckets {
			if in(i, rec.bucket) {
				lats = append(lats, rec.buckets[i]...)
				pr.Total += int64(len(rec.buckets[i])) + rec.bDrops[i]
				pr.OK += int64(len(rec.buckets[i])) - (rec.bErrs[i] - rec.bDrops[i])
			}
		}
		if pr.Total > 0 {
			pr.SuccessPct = 100 * float64(pr.OK) / float64(pr.Total)
		}
		if len(lats) > 0 {
			slices.Sort(lats)
			q := func(f float64) float64 { return lats[min(len(lats)-1, int(float64(len(lats))*f))] }
			pr.P50, pr.P99 = q(0.50), q(0.99)
		}
		if k > 0 && z.phases[k-1].fault && !ph.fault {
			pr.AfterFault, pr.BackS, pr.LocalAfterPct = true, -1, -1
			for i := range n {
				if !in(i, z.bucket) || all[i] == 0 || pct(loc[i], all[i]) < recoveredPct {
					continue
				}
				pr.BackS = (time.Duration(i)*z.bucket - from).Seconds()
				var la, aa int64
				for j := i; j < n && in(j, z.bucket); j++ {
					la, aa = la+loc[j], aa+all[j]
				}
				pr.LocalAfterPct = pct(la, aa)
				break
			}
		}
		zr.Phases = append(zr.Phases, pr)
	}
	return zr
}

// zonePolicy is the policy issue 20's targets are checked for.
const zonePolicy = "fulcrum_zone"

// backWithin is how soon after a fault ends a healthy phase must be back
// to local (issue 20: "within a few seconds of recovery").
const backWithin = 3 * time.Second

// evaluateZoneTargets checks issue 20's targets for fulcrum_zone in the
// zones scenario (phases as in zonePhases).
func evaluateZoneTargets(s ScenarioResult) []Target {
	var zr *ZoneResult
	for _, r := range s.Results {
		if r.Policy == zonePolicy {
			zr = r.Zone
		}
	}
	ph := func(k int) (PhaseResult, bool) {
		if zr == nil || k >= len(zr.Phases) {
			return PhaseResult{}, false
		}
		return zr.Phases[k], true
	}
	local := func(k int) Target {
		p, ok := ph(k)
		return Target{Name: fmt.Sprintf("phase %d (%s): local share", k+1, p.Name), Goal: ">= 97%",
			Got: fmt.Sprintf("%.2f%%", p.LocalPct), Pass: p.LocalPct >= recoveredPct, Known: ok}
	}
	success := func(k int, min float64) Target {
		p, ok := ph(k)
		return Target{Name: fmt.Sprintf("phase %d (%s): success", k+1, p.Name), Goal: fmt.Sprintf(">= %g%%", min),
			Got: fmt.Sprintf("%.3f%% (%d of %d failed)", p.SuccessPct, p.Total-p.OK, p.Total), Pass: p.SuccessPct >= min, Known: ok}
	}
	back := func(k int) Target {
		p, ok := ph(k)
		t := Target{Name: fmt.Sprintf("phase %d (%s): back to local", k+1, p.Name),
			Goal: fmt.Sprintf("a bucket >= 97%% local within %v, >= 97%% local from there", backWithin), Known: ok}
		if p.BackS < 0 {
			t.Got = "never"
			return t
		}
		t.Got = fmt.Sprintf("after %.2fs, then %.2f%% local", p.BackS, p.LocalAfterPct)
		t.Pass = p.BackS <= backWithin.Seconds() && p.LocalAfterPct >= recoveredPct
		return t
	}
	p99 := func(k int) Target {
		p, ok1 := ph(k)
		base, ok2 := ph(0)
		t := Target{Name: fmt.Sprintf("phase %d (%s): p99 bounded", k+1, p.Name), Goal: "<= 3x phase 1 p99", Known: ok1 && ok2 && base.P99 > 0}
		if t.Known {
			t.Got = fmt.Sprintf("%.2fms = %.2fx %.2fms", p.P99, p.P99/base.P99, base.P99)
			t.Pass = p.P99 <= 3*base.P99
		}
		return t
	}
	return []Target{local(0), success(1, 99.9), back(2), success(3, 99.5), p99(3), back(4)}
}

// zoneMarkdown writes the per-phase tables of a scenario with zones.
func zoneMarkdown(b *strings.Builder, s ScenarioResult) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	if len(s.ZoneTargets) > 0 {
		w("Targets of issue 20 for `%s`:\n\n| target | goal | %s | verdict |\n|---|---|---|---|\n", zonePolicy, zonePolicy)
		for _, t := range s.ZoneTargets {
			w("| %s | %s | %s | **%s** |\n", t.Name, t.Goal, orDash(t.Got), verdict(t.Pass, t.Known))
		}
		w("\n")
	}
	phases := s.Results[0].Zone.Phases
	w("Per phase: local share %% (server-side), success %%, p99 ms; after a fault, when the local share was back at >= 97 %%:\n\n| policy |")
	for k, p := range phases {
		w(" %d: %s |", k+1, p.Name)
	}
	w("\n|---|")
	for range phases {
		w("---|")
	}
	w("\n")
	for _, r := range s.Results {
		w("| %s |", r.Policy)
		for _, p := range r.Zone.Phases {
			w(" %.1f %% local, %s %%, %.1f", p.LocalPct, fmtPct(p.SuccessPct), p.P99)
			if p.AfterFault {
				w("; %s", fmtBack(p))
			}
			w(" |")
		}
		w("\n")
	}
	w("\nEvery figure per phase:\n\n| policy | phase | RPCs | local %% | by zone (a/b/c) | success %% | failed | p50 | p99 | back >= 97 %% after | local after %% |\n|---|---|--:|--:|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range s.Results {
		for k, p := range r.Zone.Phases {
			back, after := "", ""
			if p.AfterFault {
				back, after = fmtBack(p), "-"
				if p.BackS >= 0 {
					after = fmt.Sprintf("%.2f", p.LocalAfterPct)
				}
			}
			w("| %s | %d: %s | %d | %.2f | %d/%d/%d | %.3f | %d | %.2f | %.2f | %s | %s |\n", r.Policy, k+1, p.Name, p.Total, p.LocalPct,
				p.ByZone["a"], p.ByZone["b"], p.ByZone["c"], p.SuccessPct, p.Total-p.OK, p.P50, p.P99, orDash(back), orDash(after))
		}
	}
	w("\n")
}

func fmtBack(p PhaseResult) string {
	if p.BackS < 0 {
		return "never back"
	}
	return fmt.Sprintf("back in %.2fs", p.BackS)
}

// fmtPct shows a success percentage with the digits that matter near
// 100 %.
func fmtPct(v float64) string {
	if v == 100 {
		return "100"
	}
	return fmt.Sprintf("%.3f", v)
}
