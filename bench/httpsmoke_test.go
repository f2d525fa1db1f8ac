package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPSmoke_EveryScenarioEveryPolicy runs every HTTP scenario for
// every HTTP policy for a fraction of a second (what CI runs; the full
// benchmark is `go run ./bench/cmd/httpscenarios`). It asserts that the
// run completes and writes its files, and that each fault really hit the
// naive client, whose fixed rotation sends every 4th request to b0
// whatever happens: no figure of the balancers is asserted, since
// numbers from a loaded 2-core CI machine are not a verdict.
func TestHTTPSmoke_EveryScenarioEveryPolicy(t *testing.T) {
	o := HTTPOptions{Rounds: 1, Options: Options{
		Duration:    400 * time.Millisecond,
		Warmup:      150 * time.Millisecond,
		Rate:        300,
		Deadline:    500 * time.Millisecond,
		MaxInFlight: 500,
		Bucket:      100 * time.Millisecond,
		Seed:        1,
		OutDir:      t.TempDir(),
		Command:     "go test -run TestHTTPSmoke",
	}}
	if raceEnabled {
		o.Duration, o.Warmup, o.Rate = 300*time.Millisecond, 100*time.Millisecond, 150
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunHTTP(ctx, o)
	if err != nil {
		t.Fatalf("RunHTTP: %v", err)
	}

	if got, want := len(rep.Scenarios), len(httpScenarios()); got != want {
		t.Errorf("report has %d scenarios, want %d", got, want)
	}
	for _, s := range rep.Scenarios {
		if got, want := len(s.Results), len(HTTPPolicies()); got != want {
			t.Errorf("scenario %s has %d results, want %d", s.Name, got, want)
		}
		for _, r := range s.Results {
			if r.Total == 0 {
				t.Errorf("%s/%s sent no request", s.Name, r.Policy)
			}
		}
	}
	// The faults, as the naive client sees them (at 150 requests/s from
	// 15% or 25% of 300ms on, dozens of arrivals, a quarter of them to b0).
	for sc, codes := range map[string][]string{
		"fast-fail":    {"HTTP_503"},
		"hung":         {"DEADLINE_EXCEEDED"},
		"kill-restart": {"CONN_REFUSED", "CONN_RESET", "CONN_CLOSED"},
		"refused-post": {"CONN_REFUSED", "CONN_RESET", "CONN_CLOSED"},
	} {
		res, ok := rep.result(sc, "naive")
		if !ok {
			t.Errorf("no naive result for %s", sc)
			continue
		}
		var n int64
		for _, c := range codes {
			n += res.Errors[c]
		}
		if n == 0 {
			t.Errorf("%s/naive: errors %v, want some of %v: the fault did not happen", sc, res.Errors, codes)
		}
	}
	// The 429s reach every client (the only backend sends them).
	for _, p := range HTTPPolicies() {
		if res, ok := rep.result("retry-after-429", p.Name); ok && res.Errors["HTTP_429"] == 0 {
			t.Errorf("retry-after-429/%s: errors %v, want some HTTP_429: the fault did not happen", p.Name, res.Errors)
		}
	}
	// No policy may deliver a POST twice, whatever its failures.
	for _, p := range HTTPPolicies() {
		if res, ok := rep.result("refused-post", p.Name); ok && res.Errors["DUPLICATE_POST"] != 0 {
			t.Errorf("refused-post/%s: %d POSTs received twice", p.Name, res.Errors["DUPLICATE_POST"])
		}
	}
	if len(rep.Targets) != 6 {
		t.Errorf("report has %d targets, want 6", len(rep.Targets))
	}

	files := []string{"http-bench-results.md", "http-bench-results.json", "http-p99.png"}
	for _, s := range httpScenarios() {
		if s.fault {
			files = append(files, "http-timeline-"+s.name+".png")
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(o.OutDir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if strings.HasSuffix(f, ".png") && !strings.HasPrefix(string(b), "\x89PNG") {
			t.Errorf("%s is not a PNG", f)
		}
	}
	if js, err := os.ReadFile(filepath.Join(o.OutDir, "http-bench-results.json")); err == nil {
		var back HTTPReport
		if err := json.Unmarshal(js, &back); err != nil {
			t.Errorf("http-bench-results.json does not parse: %v", err)
		} else if len(back.Scenarios) != len(rep.Scenarios) {
			t.Errorf("http-bench-results.json has %d scenarios, want %d", len(back.Scenarios), len(rep.Scenarios))
		}
	}
	if md, err := os.ReadFile(filepath.Join(o.OutDir, "http-bench-results.md")); err == nil {
		for _, s := range httpScenarios() {
			if !strings.Contains(string(md), "(`"+s.name+"`)") {
				t.Errorf("http-bench-results.md has no section for %s", s.name)
			}
		}
		for _, p := range HTTPPolicies() {
			if !strings.Contains(string(md), "| "+p.Name+" |") {
				t.Errorf("http-bench-results.md has no row for %s", p.Name)
			}
		}
	}
}
