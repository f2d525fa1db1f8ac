package bench

import (
	"strings"
	"testing"
)

func TestEvaluateTargets(t *testing.T) {
	res := func(policy string, total, ok int64, p99, qps float64, shares ...float64) Result {
		return Result{Policy: policy, Total: total, OK: ok, SuccessPct: 100 * float64(ok) / float64(total), P99: p99, QPS: qps, Shares: shares}
	}
	r := &Report{Scenarios: []ScenarioResult{
		{Name: "homogeneous", Results: []Result{res("fulcrum", 100, 100, 10, 0)}},
		{Name: "one-slow", Results: []Result{res("fulcrum", 100, 100, 20, 0)}},    // exactly 2x: pass
		{Name: "stall", Results: []Result{res("fulcrum", 100, 100, 20.5, 0)}},     // over 2x: miss
		{Name: "fast-fail", Results: []Result{res("fulcrum", 10000, 9990, 5, 0)}}, // 99.9%: pass
		{Name: "capacity-skew", Results: []Result{res("least_request", 100, 100, 30, 0), res("fulcrum", 100, 100, 31, 0)}},
		{Name: "churn", Results: []Result{res("fulcrum", 100, 99, 5, 0)}},
		{Name: "weights", Weights: []uint32{1, 2, 3, 4}, Results: []Result{res("fulcrum", 100, 100, 5, 0, 12.9, 20, 28, 39.1)}},
		{Name: "throughput", Results: []Result{res("round_robin", 100, 100, 1, 1000), res("fulcrum", 100, 100, 1, 970)}},
	}}
	want := map[string]string{
		"fast-fail success": "PASS",
		"one-slow p99":      "PASS",
		"stall p99":         "MISS",
		"capacity-skew":     "MISS",
		"hung success":      "n/a",
		"churn failures":    "MISS",
		"weights 1:2:3:4":   "PASS",
		"throughput":        "PASS",
	}
	got := evaluateTargets(r)
	if len(got) != len(want) {
		t.Fatalf("got %d targets, want %d", len(got), len(want))
	}
	for _, tg := range got {
		if v := verdict(tg.Pass, tg.Known); v != want[tg.Name] {
			t.Errorf("%s: %s (%s), want %s", tg.Name, v, tg.Got, want[tg.Name])
		}
	}
	r.Targets = got
	md := r.markdown(nil)
	if !strings.Contains(md, "| stall p99 | <= 2x homogeneous p99 | p99 20.50ms = 2.05x homogeneous (10.00ms) | **MISS** |") {
		t.Errorf("markdown targets table does not show the stall miss:\n%s", md)
	}
}
