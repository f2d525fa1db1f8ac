// Command scenarios runs Fulcrum's scenario benchmark and writes
// bench-results.md, bench-results.json and PNG charts to -out.
//
// From the repository root (go.work ties the bench module in):
//
//	go run ./bench/cmd/scenarios
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"

	"github.com/fulcrum-lb/fulcrum/bench"
)

func main() {
	d := bench.DefaultOptions()
	o := d
	flag.DurationVar(&o.Duration, "duration", d.Duration, "measured time per scenario x policy")
	flag.DurationVar(&o.Warmup, "warmup", d.Warmup, "unrecorded warmup before each measurement")
	flag.Float64Var(&o.Rate, "rate", d.Rate, "open-loop arrival rate (RPCs per second)")
	flag.DurationVar(&o.Deadline, "deadline", d.Deadline, "per-RPC deadline")
	flag.IntVar(&o.MaxInFlight, "max-inflight", d.MaxInFlight, "open-loop in-flight cap; arrivals beyond it count as DROPPED")
	flag.IntVar(&o.Workers, "workers", d.Workers, "closed-loop workers (throughput scenario)")
	flag.DurationVar(&o.Bucket, "bucket", d.Bucket, "latency-over-time bucket")
	flag.Uint64Var(&o.Seed, "seed", d.Seed, "seed of arrivals and churn")
	flag.StringVar(&o.OutDir, "out", d.OutDir, "output directory")
	scs := flag.String("scenarios", "", "comma-separated scenarios (default all): "+strings.Join(bench.ScenarioNames(), ","))
	pols := flag.String("policies", "", "comma-separated policies (default all)")
	flag.Parse()
	if *scs != "" {
		o.Scenarios = strings.Split(*scs, ",")
	}
	if *pols != "" {
		o.Policies = strings.Split(*pols, ",")
	}
	o.Command = strings.TrimSpace("go run ./bench/cmd/scenarios " + strings.Join(os.Args[1:], " "))
	if out, err := exec.Command("git", "log", "-1", "--format=%h %s").Output(); err == nil {
		o.Commit = strings.TrimSpace(string(out))
		// Several people share the working tree: say when it differs.
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			if s := strings.TrimSpace(string(st)); s != "" {
				n := len(strings.Split(s, "\n"))
				o.Commit += fmt.Sprintf(" (working tree: %d tracked files modified)", n)
			}
		}
	}
	o.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s/bench-results.md, bench-results.json and charts\n", o.OutDir)
	for _, t := range rep.Targets {
		if t.Known {
			fmt.Printf("%-18s %-4s %s\n", t.Name, verdict(t), t.Got)
		}
	}
	for _, s := range rep.Scenarios {
		for _, t := range s.ZoneTargets {
			fmt.Printf("%s: %-4s %s\n", t.Name, verdict(t), t.Got)
		}
	}
}

func verdict(t bench.Target) string {
	switch {
	case !t.Known:
		return "n/a"
	case t.Pass:
		return "PASS"
	}
	return "MISS"
}
