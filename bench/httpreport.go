package bench

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// HTTPReport is everything one HTTP benchmark run measured; it is
// written as http-bench-results.json and rendered as
// http-bench-results.md.
type HTTPReport struct {
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
	Rounds    int              `json:"rounds"`
	Rate      float64          `json:"rate"`
	Deadline  string           `json:"deadline"`
	Policies  []PolicyInfo     `json:"policies"`
	Scenarios []ScenarioResult `json:"scenarios"`
	Targets   []HTTPTarget     `json:"targets"`
}

// PolicyInfo names a policy of the report and how it was configured.
type PolicyInfo struct {
	Name  string `json:"name"`
	About string `json:"about"`
}

// HTTPTarget is one of issues 11 and 18's goals for fulcrumhttp's defaults, with
// the same figure for every policy of the run.
type HTTPTarget struct {
	Name string `json:"name"`
	Goal string `json:"goal"`
	// Pass and Known are the verdict for "fulcrum" (Known is false when
	// the scenario or the policy was not run).
	Pass    bool           `json:"pass"`
	Known   bool           `json:"known"`
	Figures []TargetFigure `json:"figures"`
}

// TargetFigure is one policy's figure for a target.
type TargetFigure struct {
	Policy string `json:"policy"`
	Got    string `json:"got"`
	Pass   bool   `json:"pass"`
}

func (r *HTTPReport) result(scenario, policy string) (Result, bool) {
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

// evaluateHTTPTargets checks issue 11's targets: fast-fail success >=
// 99.9%, hung >= 99.5%, kill-restart >= 99.5%, one-slow p99 <= 2x the
// homogeneous p99 (each policy against its own homogeneous run); and
// issue 18's: every request reaches the server in retry-after-429, no POST
// fails or is received twice in refused-post.
func evaluateHTTPTargets(r *HTTPReport) []HTTPTarget {
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
	// A p99 is the statistic a shared machine disturbs most: one stall
	// of a few hundred ms during one run decides it. With several rounds
	// the ratio is taken per round (the scenario's run and the homogeneous
	// run of the same round, minutes apart) and the median of the rounds'
	// ratios is the figure; with one round, it is the ratio of the p99s.
	p99Within := func(sc string, x float64) check {
		return func(p string) (string, bool, bool) {
			res, ok1 := r.result(sc, p)
			base, ok2 := r.result("homogeneous", p)
			if !ok1 || !ok2 || base.P99 == 0 {
				return "", false, false
			}
			if n := len(res.P99Rounds); n > 1 && n == len(base.P99Rounds) {
				ratios := make([]float64, n)
				parts := make([]string, n)
				for i := range n {
					ratios[i] = res.P99Rounds[i] / base.P99Rounds[i]
					parts[i] = fmt.Sprintf("%.2fx (%.1f/%.1fms)", ratios[i], res.P99Rounds[i], base.P99Rounds[i])
				}
				m := median(ratios)
				return fmt.Sprintf("median of rounds %.2fx; rounds: %s", m, strings.Join(parts, ", ")), m <= x, true
			}
			ratio := res.P99 / base.P99
			return fmt.Sprintf("p99 %.2fms = %.2fx homogeneous (%.2fms)", res.P99, ratio, base.P99), ratio <= x, true
		}
	}
	// reached compares the requests the servers received in the measured
	// window with those sent in it (a few in flight at either edge make
	// it approximate).
	reached := func(sc string, min float64) check {
		return func(p string) (string, bool, bool) {
			res, ok := r.result(sc, p)
			if !ok || res.Total == 0 {
				return "", false, false
			}
			var hits int64
			for _, h := range res.Hits {
				hits += h
			}
			pct := 100 * float64(hits) / float64(res.Total)
			return fmt.Sprintf("%.2f%% (%d of %d)", pct, hits, res.Total), pct >= min, true
		}
	}
	postsOnce := func(sc string) check {
		return func(p string) (string, bool, bool) {
			res, ok := r.result(sc, p)
			if !ok {
				return "", false, false
			}
			dups := res.Errors["DUPLICATE_POST"]
			failed := res.Total - res.OK
			return fmt.Sprintf("%d of %d failed, %d received twice", failed, res.Total, dups), failed == 0 && dups == 0, true
		}
	}
	targets := []struct {
		name, goal string
		c          check
	}{
		{"fast-fail success", ">= 99.9%", successAtLeast("fast-fail", 99.9)},
		{"hung success", ">= 99.5%", successAtLeast("hung", 99.5)},
		{"kill-restart success", ">= 99.5%", successAtLeast("kill-restart", 99.5)},
		{"one-slow p99", "<= 2x homogeneous p99 (median of per-round ratios)", p99Within("one-slow", 2)},
		{"429 reached server", ">= 99% of requests (servers' count / requests sent)", reached("retry-after-429", 99)},
		{"refused-post success", "100% (0 failed), no POST received twice", postsOnce("refused-post")},
	}
	var out []HTTPTarget
	for _, t := range targets {
		tg := HTTPTarget{Name: t.name, Goal: t.goal}
		for _, p := range r.Policies {
			got, pass, known := t.c(p.Name)
			if !known {
				continue
			}
			tg.Figures = append(tg.Figures, TargetFigure{Policy: p.Name, Got: got, Pass: pass})
			if p.Name == "fulcrum" {
				tg.Pass, tg.Known = pass, true
			}
		}
		out = append(out, tg)
	}
	return out
}

func (r *HTTPReport) write(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(dir, "http-bench-results.json", append(js, '\n')); err != nil {
		return err
	}
	charts := make(map[string]string)
	if len(r.Scenarios) > 0 {
		if err := p99Chart(&Report{Scenarios: r.Scenarios}, filepath.Join(dir, "http-p99.png")); err != nil {
			return fmt.Errorf("bench: http p99 chart: %w", err)
		}
		charts["p99"] = "http-p99.png"
	}
	for _, s := range r.Scenarios {
		if !s.Fault {
			continue
		}
		name := "http-timeline-" + s.Name + ".png"
		if err := timelineChart(s, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("bench: http %s chart: %w", s.Name, err)
		}
		charts[s.Name] = name
	}
	return writeFile(dir, "http-bench-results.md", []byte(r.markdown(charts)))
}

func (r *HTTPReport) markdown(charts map[string]string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Fulcrum HTTP scenario benchmark\n\n")
	w("Generated by:\n\n```\n%s\n```\n\n", r.Command)
	w("- date: %s\n- Go: %s, GOMAXPROCS=%d, NumCPU=%d\n", r.Date, r.GoVersion, r.GOMAXPROCS, r.NumCPU)
	if r.Commit != "" {
		w("- code: %s\n", r.Commit)
	}
	if r.LoadAvg[0] != "" {
		w("- load average (1/5/15 min) at start: %s; at end: %s (the machine is shared with other work)\n", r.LoadAvg[0], r.LoadAvg[1])
	}
	w("- each scenario x policy: %d rounds, each on fresh net/http backends on 127.0.0.1 and a fresh client, %s warmup (not recorded), %s measured; a row merges its rounds. ", r.Rounds, r.Warmup, r.Duration)
	w("Rounds interleave every scenario and policy (policy order reversed every other round), so drift in the machine's load hits every row alike\n")
	w("- open loop: Poisson arrivals of `GET /work` at %.0f requests/s (same seed for every policy), per-request deadline %s (the request's context), HTTP/1.1\n", r.Rate, r.Deadline)
	w("- latencies in ms from the scheduled arrival (no coordinated omission), over every request including failed ones; success = a 200 within the deadline; success %% counts dropped arrivals (in-flight cap) as failures\n")
	w("- shares: %% of `/work` requests each backend's server counted (retries included), in backend order b0/b1/...; the faulty backend is always b0\n")
	w("- policies:\n")
	for _, p := range r.Policies {
		w("  - `%s`: %s\n", p.Name, p.About)
	}
	w("\n")
	if len(r.Targets) > 0 {
		w("## Targets (issues 11 and 18, fulcrumhttp defaults)\n\n| target | goal | verdict (fulcrum) |")
		for _, p := range r.Policies {
			w(" %s |", p.Name)
		}
		w("\n|---|---|---|%s\n", strings.Repeat("---|", len(r.Policies)))
		for _, t := range r.Targets {
			w("| %s | %s | **%s** |", t.Name, t.Goal, verdict(t.Pass, t.Known))
			for _, p := range r.Policies {
				cellText := "-"
				for _, f := range t.Figures {
					if f.Policy == p.Name {
						cellText = f.Got + " " + verdict(f.Pass, true)
					}
				}
				w(" %s |", cellText)
			}
			w("\n")
		}
		w("\n")
	}
	if c, ok := charts["p99"]; ok {
		w("![p99 per policy per scenario](%s)\n\n", c)
	}
	for _, s := range r.Scenarios {
		w("## %s (`%s`)\n\n%s\n\n", s.Title, s.Name, s.Models)
		w("| policy | QPS | success %% | p50 | p90 | p99 | p99.9 | errors | shares %% |\n|---|--:|--:|--:|--:|--:|--:|---|---|\n")
		for _, res := range s.Results {
			w("| %s | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n", res.Policy, res.QPS, res.SuccessPct,
				res.P50, res.P90, res.P99, res.P999, fmtErrors(res.Errors), fmtShares(res.Shares))
		}
		w("\n")
		if s.Notes != "" {
			w("%s\n\n", s.Notes)
		}
		if c, ok := charts[s.Name]; ok {
			w("![%s: p99 over time](%s)\n\n", s.Name, c)
		}
	}
	return b.String()
}
