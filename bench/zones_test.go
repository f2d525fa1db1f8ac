package bench

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestSmokeZones runs the zones scenario through its five phases in about
// a second per policy, for round_robin and fulcrum_zone: the run must
// complete, every phase must have RPCs, and round_robin, which rotates
// over the nine backends, must send a third of them to zone a in every
// phase (counted by the servers), which shows the per-zone counting
// works. No other figure is asserted: the smoke phases are far shorter
// than a breaker's open period.
func TestSmokeZones(t *testing.T) {
	o := Options{
		Duration:    200 * time.Millisecond,
		Warmup:      100 * time.Millisecond,
		Rate:        300,
		Deadline:    500 * time.Millisecond,
		MaxInFlight: 500,
		Bucket:      50 * time.Millisecond,
		Seed:        1,
		Scenarios:   []string{"zones"},
		Policies:    []string{"round_robin", zonePolicy},
		OutDir:      t.TempDir(),
		Command:     "go test -run TestSmokeZones",
	}
	if raceEnabled {
		o.Rate = 150
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Scenarios) != 1 || len(rep.Scenarios[0].Results) != 2 {
		t.Fatalf("report: %d scenarios, want 1 with 2 results", len(rep.Scenarios))
	}
	s := rep.Scenarios[0]
	for _, r := range s.Results {
		if r.Zone == nil || len(r.Zone.Phases) != len(zonePhases) {
			t.Fatalf("%s: zone result %+v, want %d phases", r.Policy, r.Zone, len(zonePhases))
		}
		for k, p := range r.Zone.Phases {
			if p.Total == 0 || p.ByZone["a"]+p.ByZone["b"]+p.ByZone["c"] == 0 {
				t.Errorf("%s phase %d: %d RPCs sent, %v served", r.Policy, k+1, p.Total, p.ByZone)
			}
			// round_robin cycles over nine backends, three in zone a: any
			// run of n consecutive RPCs has n/3 ± 2 in zone a, ± 3 with
			// RPCs reordered around a phase boundary. A percentage bound
			// failed on the 30-odd RPCs of a phase under -race (27.3 %).
			if a, n := p.ByZone["a"], p.ByZone["a"]+p.ByZone["b"]+p.ByZone["c"]; r.Policy == "round_robin" && (3*a < n-9 || 3*a > n+9) {
				t.Errorf("round_robin phase %d: %d of %d RPCs in zone a (%.1f%%), want a third ± 3", k+1, a, n, p.LocalPct)
			}
		}
	}
	if len(s.ZoneTargets) != 6 {
		t.Errorf("zone targets: %d, want 6", len(s.ZoneTargets))
	}
	md, err := os.ReadFile(filepath.Join(o.OutDir, "bench-results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(`zones`)", "Targets of issue 20 for `fulcrum_zone`", "| fulcrum_zone | 5: healthy again |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("bench-results.md lacks %q", want)
		}
	}
}

// TestZoneCell_Result feeds per-bucket counts to the phase computation:
// two phases of four 250ms buckets, a fault then a healthy phase whose
// local share is back at 97 % from its third bucket.
func TestZoneCell_Result(t *testing.T) {
	const b = 250 * time.Millisecond
	z := &zoneCell{
		zones:  []string{"a", "b"},
		phases: []zonePhase{{"fault", true}, {"healthy again", false}},
		dur:    8 * b,
		bucket: b,
		hits: [][]int64{
			{10, 10, 10, 10, 50, 90, 97, 99, 0},
			{90, 90, 90, 90, 50, 10, 3, 1, 0},
		},
	}
	rec := newRecorder(time.Now(), z.dur, b)
	for i := range 8 {
		at := rec.start.Add(time.Duration(i) * b)
		rec.record(at, time.Duration(i+1)*time.Millisecond, nil)
		if i == 1 {
			rec.record(at, time.Millisecond, status.Error(codes.Unavailable, "x"))
			rec.drop(at)
		}
	}
	zr := z.result(rec)
	f, h := zr.Phases[0], zr.Phases[1]
	if f.Total != 6 || f.OK != 4 || f.LocalPct != 10 || f.AfterFault {
		t.Errorf("fault phase: %+v; want 6 RPCs, 4 OK, 10%% local, not after a fault", f)
	}
	if h.Total != 4 || h.OK != 4 || h.P99 != 8 || h.ByZone["a"] != 336 {
		t.Errorf("healthy phase: %+v; want 4 RPCs, all OK, p99 8ms, 336 in zone a", h)
	}
	if !h.AfterFault || h.BackS != 0.5 || h.LocalAfterPct != 98 {
		t.Errorf("healthy phase: back after %vs, then %v%% local; want 0.5s, 98%%", h.BackS, h.LocalAfterPct)
	}
	if want := []float64{10, 10, 10, 10, 50, 90, 97, 99, -1}; !slices.Equal(zr.LocalPct, want) {
		t.Errorf("local share per bucket %v, want %v", zr.LocalPct, want)
	}
}

// TestLimiter: one slot and one queue place; a third concurrent RPC is
// refused at once with RESOURCE_EXHAUSTED, and a released slot admits
// the waiting one.
func TestLimiter(t *testing.T) {
	l := newLimiter(1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop := make(chan struct{})
	release, err := l.acquire(ctx, stop)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		r, err := l.acquire(ctx, stop)
		if err == nil {
			r()
		}
		waited <- err
	}()
	// The second call has queued once n counts it.
	for l.n.Load() < 2 {
		if ctx.Err() != nil {
			t.Fatal("second acquire never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := l.acquire(ctx, stop); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third acquire: %v, want RESOURCE_EXHAUSTED", err)
	}
	release()
	if err := <-waited; err != nil {
		t.Errorf("queued acquire: %v", err)
	}
	if n := l.n.Load(); n != 0 {
		t.Errorf("%d RPCs still counted, want 0", n)
	}
}

// TestScenario_DefaultPolicies: fulcrum_zone runs by default in the zones
// scenario only, and the zones scenario runs its own list.
func TestScenario_DefaultPolicies(t *testing.T) {
	names := func(ps []Policy) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	for _, s := range scenarios() {
		got := names(s.defaultPolicies())
		if s.zones != nil {
			if !slices.Equal(got, s.policies) {
				t.Errorf("%s: default policies %v, want %v", s.name, got, s.policies)
			}
		} else if slices.Contains(got, zonePolicy) {
			t.Errorf("%s: default policies %v include %s", s.name, got, zonePolicy)
		}
	}
	if _, err := selectPolicies([]string{zonePolicy}); err != nil {
		t.Errorf("selectPolicies(%s): %v", zonePolicy, err)
	}
}
