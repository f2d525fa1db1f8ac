package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestDemo runs the demo with a short load and checks what its output
// claims: a table with both policies, and Fulcrum ahead on success because
// it stops sending to the failing backend while round_robin keeps giving
// it a fifth of the RPCs.
//
// The comparisons cannot flip by chance: round_robin rotates, so the failing
// backend gets exactly a fifth of the 300 RPCs (60, all failures), while
// Fulcrum's breaker opens after a handful of consecutive failures and then
// lets through only half-open trials, a few per open period; a run sees
// about 5. Both figures come from counts, not from timing.
func TestDemo(t *testing.T) {
	opts := defaultOptions()
	opts.Duration = 1500 * time.Millisecond
	opts.Rate = 200
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out bytes.Buffer
	rs, err := run(ctx, &out, opts)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("demo output:\n%s", out.String())

	header := regexp.MustCompile(`(?m)^\s+round_robin\s+Fulcrum\s*$`)
	if !header.MatchString(out.String()) {
		t.Errorf("output has no table header naming round_robin and Fulcrum")
	}
	success := regexp.MustCompile(`(?m)^success\s+([0-9.]+)%\s+([0-9.]+)%\s*$`).FindStringSubmatch(out.String())
	if success == nil {
		t.Fatalf("output has no success row with two percentages")
	}
	rr, _ := strconv.ParseFloat(success[1], 64)
	fu, _ := strconv.ParseFloat(success[2], 64)
	if fu <= rr {
		t.Errorf("success: Fulcrum %.2f%%, round_robin %.2f%%; want Fulcrum higher", fu, rr)
	}
	if !strings.Contains(out.String(), "Verdict: Fulcrum vs round_robin: ") {
		t.Errorf("output has no verdict line")
	}

	// Server-side counts: round_robin spreads evenly, so the failing
	// backend gets about a fifth; Fulcrum's breaker ejects it.
	if len(rs) != 2 {
		t.Fatalf("got %d results, want 2", len(rs))
	}
	// The snapshot printed at the end shows the failing backend ejected
	// by its breaker (open for 5s, longer than the run).
	snapLine := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(rs[1].addrs[failingIndex]) + `\s+(\S+)\s.*$`).FindStringSubmatch(out.String())
	if snapLine == nil || snapLine[1] != "ejected" {
		t.Errorf("snapshot line of the failing backend %s: %q, want state ejected", rs[1].addrs[failingIndex], snapLine)
	}
	if !strings.Contains(out.String(), "Why: failing got ") || !strings.Contains(out.String(), "Why: slow (10x) got ") {
		t.Errorf("output does not say why the failing and slow backends got little traffic")
	}
	if got, want := rs[1].hits[failingIndex], rs[0].hits[failingIndex]; got >= want {
		t.Errorf("failing backend got %d RPCs under Fulcrum, %d under round_robin; want fewer under Fulcrum", got, want)
	}
}
