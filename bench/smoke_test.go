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

// TestSmoke runs every scenario for every policy briefly (what CI runs;
// the full benchmark is `go run ./bench/cmd/scenarios`). It asserts only
// that the run completes and writes its report files, not any figure:
// numbers from a loaded 2-core CI machine are not a verdict. The zones
// scenario, five phases long, has its own TestSmokeZones.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario for every policy (~1 min)")
	}
	o := Options{
		Duration:    600 * time.Millisecond,
		Warmup:      200 * time.Millisecond,
		Rate:        300,
		Deadline:    500 * time.Millisecond,
		MaxInFlight: 500,
		Workers:     4,
		Bucket:      100 * time.Millisecond,
		Seed:        1,
		OutDir:      t.TempDir(),
		Command:     "go test -run TestSmoke",
	}
	var scs []scenario
	for _, s := range scenarios() {
		if s.zones == nil {
			scs = append(scs, s)
			o.Scenarios = append(o.Scenarios, s.name)
		}
	}
	if raceEnabled {
		o.Duration, o.Warmup, o.Rate = 400*time.Millisecond, 150*time.Millisecond, 150
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	if got, want := len(rep.Scenarios), len(scs); got != want {
		t.Errorf("report has %d scenarios, want %d", got, want)
	}
	for i, s := range rep.Scenarios {
		if got, want := len(s.Results), len(scs[i].defaultPolicies()); got != want {
			t.Errorf("scenario %s has %d results, want %d", s.Name, got, want)
		}
		for _, r := range s.Results {
			if r.Total == 0 {
				t.Errorf("%s/%s sent no RPC", s.Name, r.Policy)
			}
		}
	}
	if len(rep.Targets) != 8 {
		t.Errorf("report has %d targets, want 8", len(rep.Targets))
	}

	files := []string{"bench-results.md", "bench-results.json", "p99.png"}
	for _, s := range scs {
		if s.fault {
			files = append(files, "timeline-"+s.name+".png")
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
	js, err := os.ReadFile(filepath.Join(o.OutDir, "bench-results.json"))
	if err == nil {
		var back Report
		if err := json.Unmarshal(js, &back); err != nil {
			t.Errorf("bench-results.json does not parse: %v", err)
		} else if len(back.Scenarios) != len(rep.Scenarios) {
			t.Errorf("bench-results.json has %d scenarios, want %d", len(back.Scenarios), len(rep.Scenarios))
		}
	}
	md, err := os.ReadFile(filepath.Join(o.OutDir, "bench-results.md"))
	if err == nil {
		for _, s := range scs {
			if !strings.Contains(string(md), "(`"+s.name+"`)") {
				t.Errorf("bench-results.md has no section for %s", s.name)
			}
		}
		if !strings.Contains(string(md), o.Command) {
			t.Errorf("bench-results.md does not show the command")
		}
	}
}
