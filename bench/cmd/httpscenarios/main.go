// Command httpscenarios runs Fulcrum's HTTP scenario benchmark (a naive
// rotating RoundTripper, bufbuild/httplb and fulcrumhttp on the same
// faulty net/http fleet) and writes http-bench-results.md,
// http-bench-results.json and PNG charts to -out.
//
// From the repository root (go.work ties the bench module in):
//
//	go run ./bench/cmd/httpscenarios
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
	d := bench.DefaultHTTPOptions()
	o := d
	flag.DurationVar(&o.Duration, "duration", d.Duration, "measured time per scenario x policy")
	flag.DurationVar(&o.Warmup, "warmup", d.Warmup, "unrecorded warmup before each measurement")
	flag.Float64Var(&o.Rate, "rate", d.Rate, "open-loop arrival rate (requests per second)")
	flag.DurationVar(&o.Deadline, "deadline", d.Deadline, "per-request deadline")
	flag.IntVar(&o.MaxInFlight, "max-inflight", d.MaxInFlight, "open-loop in-flight cap; arrivals beyond it count as DROPPED")
	flag.IntVar(&o.Rounds, "rounds", d.Rounds, "rounds of every scenario x policy, interleaved")
	flag.DurationVar(&o.Bucket, "bucket", d.Bucket, "latency-over-time bucket")
	flag.Uint64Var(&o.Seed, "seed", d.Seed, "seed of arrivals")
	flag.StringVar(&o.OutDir, "out", d.OutDir, "output directory")
	scs := flag.String("scenarios", "", "comma-separated scenarios (default all): "+strings.Join(bench.HTTPScenarioNames(), ","))
	pols := flag.String("policies", "", "comma-separated policies (default all): "+strings.Join(bench.HTTPPolicyNames(), ","))
	flag.Parse()
	if *scs != "" {
		o.Scenarios = strings.Split(*scs, ",")
	}
	if *pols != "" {
		o.Policies = strings.Split(*pols, ",")
	}
	o.Command = strings.TrimSpace("go run ./bench/cmd/httpscenarios " + strings.Join(os.Args[1:], " "))
	if out, err := exec.Command("git", "log", "-1", "--format=%h %s").Output(); err == nil {
		o.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
			if s := strings.TrimSpace(string(st)); s != "" {
				o.Commit += fmt.Sprintf(" (working tree: %d tracked files modified)", len(strings.Split(s, "\n")))
			}
		}
	}
	o.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.RunHTTP(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s/http-bench-results.md, http-bench-results.json and charts\n", o.OutDir)
	for _, t := range rep.Targets {
		for _, f := range t.Figures {
			v := "MISS"
			if f.Pass {
				v = "PASS"
			}
			fmt.Printf("%-21s %-8s %-4s %s\n", t.Name, f.Policy, v, f.Got)
		}
	}
}
