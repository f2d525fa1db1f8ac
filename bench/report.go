package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Report is everything one benchmark run measured; it is written as
// bench-results.json and rendered as bench-results.md.
type Report struct {
	Command    string `json:"command"`
	Date       string `json:"date"`
	GoVersion  string `json:"goVersion"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"numCPU"`
	Commit     string `json:"commit,omitempty"`
	// LoadAvg is /proc/loadavg at the start and the end of the run: the
	// machine is shared, and other work inflates tails.
	LoadAvg   [2]string        `json:"loadavg,omitempty"`
	Duration  string           `json:"duration"`
	Warmup    string           `json:"warmup"`
	Rate      float64          `json:"rate"`
	Deadline  string           `json:"deadline"`
	Workers   int              `json:"workers"`
	Scenarios []ScenarioResult `json:"scenarios"`
	Targets   []Target         `json:"targets"`
}

// ScenarioResult holds one scenario's results, one per policy.
type ScenarioResult struct {
	Name       string   `json:"name"`
	Title      string   `json:"title"`
	Models     string   `json:"models"`
	Notes      string   `json:"notes,omitempty"`
	ClosedLoop bool     `json:"closedLoop,omitempty"`
	Fault      bool     `json:"fault,omitempty"`
	Weights    []uint32 `json:"weights,omitempty"`
	Markers    []Marker `json:"markers,omitempty"`
	Results    []Result `json:"results"`
	// ZoneTargets are issue 20's goals for fulcrum_zone (zones scenario).
	ZoneTargets []Target `json:"zoneTargets,omitempty"`
}

// Marker is a scenario event, in seconds after the start of measurement.
type Marker struct {
	T     float64 `json:"t"`
	Label string  `json:"label"`
}

// Result is one policy's outcome in one scenario. Latencies are in
// milliseconds over every completed RPC, failed ones included.
type Result struct {
	Policy     string           `json:"policy"`
	Total      int64            `json:"total"` // arrivals, dropped included
	Completed  int64            `json:"completed"`
	OK         int64            `json:"ok"`
	QPS        float64          `json:"qps"` // completed RPCs per second (closed loop: median round)
	QPSRounds  []float64        `json:"qpsRounds,omitempty"`
	SuccessPct float64          `json:"successPct"`
	P50        float64          `json:"p50Ms"`
	P90        float64          `json:"p90Ms"`
	P99        float64          `json:"p99Ms"`
	P999       float64          `json:"p999Ms"`
	Max        float64          `json:"maxMs"`
	Errors     map[string]int64 `json:"errors"`
	// Hits and Shares (percent) are counted by the servers.
	Hits           []int64   `json:"hits"`
	Shares         []float64 `json:"shares"`
	HitsNotServing int64     `json:"hitsNotServing"`
	// ExtraLoadPct is how many more requests the servers received than
	// RPCs completed, in percent of the completed RPCs (hedges; 0 for
	// policies that send each RPC once, up to RPCs cut between the
	// warm-up and the measurement).
	ExtraLoadPct float64  `json:"extraLoadPct"`
	Timeline     []Bucket `json:"timeline"`

	// P99Rounds is the p99 of each round, in round order, when a cell
	// merges several (HTTP benchmark).
	P99Rounds []float64 `json:"p99RoundsMs,omitempty"`

	// Zone is the per-phase outcome of a scenario with zones.
	Zone *ZoneResult `json:"zone,omitempty"`
}

// Bucket is one slice of the latency-over-time series: RPCs that arrived
// in [T, T+bucket).
type Bucket struct {
	T      float64 `json:"t"`
	N      int     `json:"n"`
	Errors int64   `json:"errors"`
	P99    float64 `json:"p99Ms"`
}

// Target is one of issue 6's goals for Fulcrum's defaults.
type Target struct {
	Name   string `json:"name"`
	Goal   string `json:"goal"`
	Got    string `json:"got"`
	Pass   bool   `json:"pass"`
	Latent string `json:"latencyOff,omitempty"` // the same figure for fulcrum_nolatency (latency term off)
	Known  bool   `json:"known"`                // false: scenario or policy not run
}

func (r *Report) result(scenario, policy string) (Result, bool) {
	for _, s := range r.Scenarios {
		if s.Name != scenario {
			continue
		}
		for _, res := range s.Results {
			if res.Policy == policy {
				return res, true
			}
		}
	}
	return Result{}, false
}

func (r *Report) scenario(name string) (ScenarioResult, bool) {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return ScenarioResult{}, false
}

// evaluateTargets checks issue 6's targets for "fulcrum" (the defaults)
// and reports the same figure for "fulcrum_nolatency" beside it.
func evaluateTargets(r *Report) []Target {
	type check func(policy string) (got string, pass, known bool)
	successAtLeast := func(sc string, min float64) check {
		return func(p string) (string, bool, bool) {
			res, ok := r.result(sc, p)
			if !ok {
				return "", false, false
			}
			return fmt.Sprintf("%.3f%% (%d of %d failed)", res.SuccessPct, res.Total-res.OK, res.Total), res.SuccessPct >= min, true
		}
	}
	p99Within := func(sc string, x float64) check {
		return func(p string) (string, bool, bool) {
			res, ok1 := r.result(sc, p)
			base, ok2 := r.result("homogeneous", p)
			if !ok1 || !ok2 || base.P99 == 0 {
				return "", false, false
			}
			ratio := res.P99 / base.P99
			return fmt.Sprintf("p99 %.2fms = %.2fx homogeneous (%.2fms)", res.P99, ratio, base.P99), ratio <= x, true
		}
	}
	targets := []struct {
		name, goal string
		c          check
	}{
		{"fast-fail success", ">= 99.9%", successAtLeast("fast-fail", 99.9)},
		{"one-slow p99", "<= 2x homogeneous p99", p99Within("one-slow", 2)},
		{"stall p99", "<= 2x homogeneous p99", p99Within("stall", 2)},
		{"capacity-skew", "100% success, p99 <= least_request p99", func(p string) (string, bool, bool) {
			res, ok1 := r.result("capacity-skew", p)
			lr, ok2 := r.result("capacity-skew", "least_request")
			if !ok1 || !ok2 {
				return "", false, false
			}
			return fmt.Sprintf("%.3f%%, p99 %.2fms vs %.2fms", res.SuccessPct, res.P99, lr.P99),
				res.OK == res.Total && res.P99 <= lr.P99, true
		}},
		{"hung success", ">= 99.5%", successAtLeast("hung", 99.5)},
		{"churn failures", "0 failed RPCs", func(p string) (string, bool, bool) {
			res, ok := r.result("churn", p)
			if !ok {
				return "", false, false
			}
			return fmt.Sprintf("%d failed of %d", res.Total-res.OK, res.Total), res.Total == res.OK, true
		}},
		{"weights 1:2:3:4", "every share within 3 points of ideal", func(p string) (string, bool, bool) {
			res, ok := r.result("weights", p)
			s, _ := r.scenario("weights")
			if !ok || len(s.Weights) != len(res.Shares) {
				return "", false, false
			}
			var sum float64
			for _, w := range s.Weights {
				sum += float64(w)
			}
			worst := 0.0
			for i, w := range s.Weights {
				worst = math.Max(worst, math.Abs(res.Shares[i]-100*float64(w)/sum))
			}
			return fmt.Sprintf("%s%% (worst %.1f points off)", fmtShares(res.Shares), worst), worst <= 3, true
		}},
		{"throughput", ">= 0.97x round_robin QPS", func(p string) (string, bool, bool) {
			res, ok1 := r.result("throughput", p)
			rr, ok2 := r.result("throughput", "round_robin")
			if !ok1 || !ok2 || rr.QPS == 0 {
				return "", false, false
			}
			x := res.QPS / rr.QPS
			return fmt.Sprintf("%.0f vs %.0f QPS = %.3fx", res.QPS, rr.QPS, x), x >= 0.97, true
		}},
	}
	var out []Target
	for _, t := range targets {
		got, pass, known := t.c("fulcrum")
		lat, latPass, latKnown := t.c("fulcrum_nolatency")
		tg := Target{Name: t.name, Goal: t.goal, Got: got, Pass: pass, Known: known}
		if latKnown {
			tg.Latent = lat + " " + verdict(latPass, true)
		}
		out = append(out, tg)
	}
	return out
}

func verdict(pass, known bool) string {
	switch {
	case !known:
		return "n/a"
	case pass:
		return "PASS"
	}
	return "MISS"
}

func (r *Report) write(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(dir, "bench-results.json", append(js, '\n')); err != nil {
		return err
	}
	charts, err := writeCharts(r, dir)
	if err != nil {
		return err
	}
	return writeFile(dir, "bench-results.md", []byte(r.markdown(charts)))
}

func (r *Report) markdown(charts map[string]string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Fulcrum scenario benchmark\n\n")
	w("Generated by:\n\n```\n%s\n```\n\n", r.Command)
	w("- date: %s\n- Go: %s, GOMAXPROCS=%d, NumCPU=%d\n", r.Date, r.GoVersion, r.GOMAXPROCS, r.NumCPU)
	if r.Commit != "" {
		w("- code: %s\n", r.Commit)
	}
	if r.LoadAvg[0] != "" {
		w("- load average (1/5/15 min) at start: %s; at end: %s\n", r.LoadAvg[0], r.LoadAvg[1])
	}
	w("- each scenario x policy: fresh backends and client, %s warmup (not recorded), %s measured\n", r.Warmup, r.Duration)
	w("- open loop: Poisson arrivals at %.0f RPS (same seed for every policy), per-RPC deadline %s; closed loop: %d workers\n", r.Rate, r.Deadline, r.Workers)
	w("- latencies in ms from the scheduled arrival (no coordinated omission), over every RPC including failed ones; success %% counts dropped arrivals (in-flight cap) as failures\n")
	w("- shares: %% of application RPCs each backend's server counted, in backend order b0/b1/...; the faulty backend is always b0 (b3 in cold-join)\n")
	w("- policies: `round_robin`, `least_request` = `least_request_experimental` (choiceCount 2), `wrr_orca` = `weighted_round_robin` with per-call ORCA reports (blackoutPeriod 1s, weightUpdatePeriod 100ms), `fulcrum` = `weighted_least_request` defaults, `fulcrum_nolatency` = defaults + `latencyAware: false` (the latency term off), `fulcrum_hedging` = defaults + `fulcrum.WithHedging(fulcrum.HedgingPolicy{})` (adaptive delay, 5 %% extra load + 10/s), `fulcrum_zone` = defaults + `\"localZone\":\"a\"` (zones scenario only, unless named), `fulcrum_zone_hedging` = the same + `WithHedging` with `NonFatalStatusCodes: UNAVAILABLE` (the next attempt at once after a fast failure); extra load %%: requests the servers counted beyond the RPCs completed\n\n")

	if slices.ContainsFunc(r.Targets, func(t Target) bool { return t.Known }) {
		w("## Targets (Fulcrum defaults)\n\n")
		w("| target | goal | fulcrum | verdict | fulcrum_nolatency |\n|---|---|---|---|---|\n")
		for _, t := range r.Targets {
			w("| %s | %s | %s | **%s** | %s |\n", t.Name, t.Goal, orDash(t.Got), verdict(t.Pass, t.Known), orDash(t.Latent))
		}
		w("\n")
	}
	if c, ok := charts["p99"]; ok {
		w("![p99 per policy per scenario](%s)\n\n", c)
	}
	for _, s := range r.Scenarios {
		w("## %s (`%s`)\n\n%s\n\n", s.Title, s.Name, s.Models)
		notServing := s.Name == "not-serving"
		w("| policy | QPS | success %% | p50 | p90 | p99 | p99.9 | errors | shares %% | extra load %% |")
		if notServing {
			w(" to NOT_SERVING |")
		}
		w("\n|---|--:|--:|--:|--:|--:|--:|---|---|--:|")
		if notServing {
			w("--:|")
		}
		w("\n")
		for _, res := range s.Results {
			w("| %s | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %s | %s | %.1f |", res.Policy, res.QPS, res.SuccessPct,
				res.P50, res.P90, res.P99, res.P999, fmtErrors(res.Errors), fmtShares(res.Shares), res.ExtraLoadPct)
			if notServing {
				w(" %d |", res.HitsNotServing)
			}
			w("\n")
		}
		w("\n")
		if s.ClosedLoop && len(s.Results) > 0 && len(s.Results[0].QPSRounds) > 1 {
			w("QPS is the median of %d interleaved rounds; per round:\n\n", len(s.Results[0].QPSRounds))
			for _, res := range s.Results {
				var rs []string
				for _, q := range res.QPSRounds {
					rs = append(rs, fmt.Sprintf("%.0f", q))
				}
				w("- %s: %s\n", res.Policy, strings.Join(rs, ", "))
			}
			w("\n")
		}
		if s.Notes != "" {
			w("%s\n\n", s.Notes)
		}
		if s.Results != nil && s.Results[0].Zone != nil {
			zoneMarkdown(&b, s)
		}
		if c, ok := charts[s.Name]; ok {
			w("![%s: p99 over time](%s)\n\n", s.Name, c)
		}
	}
	return b.String()
}

func fmtErrors(m map[string]int64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
