// Command demo runs the same load through round_robin and through Fulcrum
// against an embedded fleet with one slow and one failing backend, and
// prints the results side by side.
//
//	go run ./examples/demo
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	// Registers the weighted_least_request policy and the fulcrum:// scheme.
	_ "github.com/fulcrum-lb/fulcrum"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// options of one demo run. main uses defaultOptions; the test shortens it.
type options struct {
	Duration    time.Duration // load per policy
	Rate        int           // RPCs started per second (open loop)
	MaxInFlight int           // RPCs beyond this many in flight are shed by the client
	Deadline    time.Duration // per-RPC deadline
	Delay       time.Duration // service time of a healthy backend; the slow one takes 10x
	Progress    bool          // rewrite a progress line with \r while running
}

func defaultOptions() options {
	return options{
		Duration:    8 * time.Second,
		Rate:        400,
		MaxInFlight: 200,
		Deadline:    time.Second,
		Delay:       2 * time.Millisecond,
	}
}

// policy is one contestant. Both dial the same fulcrum://static target, so
// only the load-balancing policy differs.
type policy struct {
	title  string // column header
	config string // service config
}

var policies = []policy{
	{"round_robin", `{"loadBalancingConfig":[{"round_robin":{}}]}`},
	{"Fulcrum", `{"loadBalancingConfig":[{"weighted_least_request":{}}]}`},
}

// backend roles, in fleet order.
var labels = []string{"healthy-1", "healthy-2", "healthy-3", "slow (10x)", "failing"}

const (
	slowIndex    = 3
	failingIndex = 4
)

// result of driving one policy.
type result struct {
	policy   string
	attempts int                // RPCs scheduled
	ok       int                // RPCs that succeeded
	errs     map[codes.Code]int // failed RPCs by code
	shed     int                // not sent: MaxInFlight reached
	lat      []time.Duration    // latency of each successful RPC, sorted
	hits     []int64            // RPCs received by each backend (server side)
	addrs    []string           // each backend's address
	snapshot string             // Fulcrum only: its channel's fulcrumz snapshot at the end
	why      []string           // Fulcrum only: why the slow and failing backends got little traffic
}

func (r *result) successPct() float64 {
	if r.attempts == 0 {
		return 0
	}
	return 100 * float64(r.ok) / float64(r.attempts)
}

// percentile returns the p-th percentile (0 < p <= 1) of the successful
// RPCs' latencies, nearest-rank.
func (r *result) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat))*p+0.999999) - 1
	return r.lat[min(max(i, 0), len(r.lat)-1)]
}

func main() {
	opts := defaultOptions()
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		opts.Progress = true
	}
	if _, err := run(context.Background(), os.Stdout, opts); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts the fleet, drives every policy in turn, prints the table and
// the verdict to out, and returns the results in policy order.
func run(ctx context.Context, out io.Writer, opts options) ([]*result, error) {
	fleet, err := testutil.StartFleet(len(labels), testutil.Options{})
	if err != nil {
		return nil, fmt.Errorf("starting backends: %v", err)
	}
	defer fleet.Stop()
	for i, b := range fleet {
		switch i {
		case slowIndex:
			b.SetDelay(10 * opts.Delay)
		case failingIndex:
			// Fails every RPC while its connection and its health service
			// stay up: only the RPC outcomes give it away.
			b.SetDelay(opts.Delay)
			b.SetFailure(codes.Unavailable)
		default:
			b.SetDelay(opts.Delay)
		}
	}
	target := "fulcrum://static/" + strings.Join(fleet.Addrs(), ",")

	fmt.Fprintf(out, "Fleet on 127.0.0.1: 3 healthy (%v), 1 slow (%v), 1 failing every RPC with UNAVAILABLE (connection and health up)\n",
		opts.Delay, 10*opts.Delay)
	fmt.Fprintf(out, "Load: %d RPC/s open loop for %v per policy, %v deadline, at most %d in flight\n",
		opts.Rate, opts.Duration, opts.Deadline, opts.MaxInFlight)
	fmt.Fprintf(out, "Both clients dial %s\n\n", target)

	var results []*result
	for _, p := range policies {
		r, err := drivePolicy(ctx, out, opts, fleet, target, p)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	fmt.Fprintln(out)
	printTable(out, results)
	fmt.Fprintln(out)
	fmt.Fprintln(out, verdict(results[1], results[0]))
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Fulcrum's channel at the end of its run, as fulcrumz.Handler serves it (?format=text):")
	fmt.Fprint(out, results[1].snapshot)
	fmt.Fprintf(out, "(%s)\n", legend(fleet))
	for _, w := range results[1].why {
		fmt.Fprintln(out, w)
	}
	return results, nil
}

// drivePolicy dials target with p's service config, waits until the
// channel is READY, then runs the load against it and collects the result.
func drivePolicy(ctx context.Context, out io.Writer, opts options, fleet testutil.Fleet, target string, p policy) (*result, error) {
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(p.config))
	if err != nil {
		return nil, fmt.Errorf("%s: dialing %s: %v", p.title, target, err)
	}
	defer cc.Close()

	// Connection setup is not what this demo compares: start measuring
	// once the channel can serve.
	readyCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cc.Connect()
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(readyCtx, s) {
			return nil, fmt.Errorf("%s: channel not READY after 10s (state %v)", p.title, s)
		}
	}

	fleet.ResetHits()
	r := drive(ctx, testgrpc.NewTestServiceClient(cc), opts, func(elapsed time.Duration, done, ok int64, final bool) {
		pct := 0.0
		if done > 0 {
			pct = 100 * float64(ok) / float64(done)
		}
		line := fmt.Sprintf("%-12s %5.1fs  %5d RPCs  %6.2f%% ok", p.title, elapsed.Seconds(), done, pct)
		switch {
		case final:
			fmt.Fprintf(out, "\r%s\n", line)
		case opts.Progress:
			fmt.Fprintf(out, "\r%s", line)
		}
	})
	r.policy = p.title
	r.hits = fleet.Hits()
	r.addrs = fleet.Addrs()
	var snap strings.Builder
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Target == target && ch.Transport == "grpc" {
			fulcrumz.WriteText(&snap, []fulcrumz.Channel{ch})
			r.why = explain(ch, r.addrs)
		}
	}
	r.snapshot = snap.String()
	return r, nil
}

// drive sends RPCs at a fixed rate whatever the responses do (open loop),
// so that a slow backend builds a queue instead of slowing the client down.
// Latency is measured from each RPC's scheduled start. progress is called
// every 200ms and once at the end.
func drive(ctx context.Context, client testgrpc.TestServiceClient, opts options,
	progress func(elapsed time.Duration, done, ok int64, final bool)) *result {
	interval := time.Second / time.Duration(opts.Rate)
	n := int(opts.Duration / interval)
	r := &result{attempts: n, errs: make(map[codes.Code]int)}

	var (
		mu       sync.Mutex // guards r.lat and r.errs
		done, ok atomic.Int64
		wg       sync.WaitGroup
		sem      = make(chan struct{}, opts.MaxInFlight)
	)
	start := time.Now()
	lastProgress := start
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if now := time.Now(); now.Sub(lastProgress) >= 200*time.Millisecond {
			lastProgress = now
			progress(now.Sub(start), done.Load(), ok.Load(), false)
		}
		select {
		case sem <- struct{}{}:
		default:
			r.shed++
			done.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, opts.Deadline)
			_, err := client.EmptyCall(rctx, &testpb.Empty{})
			cancel()
			lat := time.Since(due)
			mu.Lock()
			if err == nil {
				r.lat = append(r.lat, lat)
				ok.Add(1)
			} else {
				r.errs[status.Code(err)]++
			}
			mu.Unlock()
			done.Add(1)
		}()
	}
	wg.Wait()
	progress(time.Since(start), done.Load(), ok.Load(), true)
	r.ok = int(ok.Load())
	slices.Sort(r.lat)
	return r
}

// printTable prints one column per policy: server-side share of each
// backend, then client-side success and latency.
func printTable(out io.Writer, rs []*result) {
	row := func(name string, cell func(*result) string) {
		fmt.Fprintf(out, "%-22s", name)
		for _, r := range rs {
			fmt.Fprintf(out, " %16s", cell(r))
		}
		fmt.Fprintln(out)
	}
	row("", func(r *result) string { return r.policy })
	fmt.Fprintln(out, "share (server side)")
	for i, l := range labels {
		row("  "+l, func(r *result) string { return share(r, i) })
	}
	row("RPCs", func(r *result) string { return fmt.Sprint(r.attempts) })
	row("success", func(r *result) string { return fmt.Sprintf("%.2f%%", r.successPct()) })
	row("errors", func(r *result) string { return errorSummary(r) })
	fmt.Fprintln(out, "latency of successful RPCs (client side)")
	row("  p50", func(r *result) string { return fmtDur(r.percentile(0.50)) })
	row("  p99", func(r *result) string { return fmtDur(r.percentile(0.99)) })
}

// errorSummary lists failures by code, most frequent first: "UNAVAILABLE 640".
func errorSummary(r *result) string {
	type kv struct {
		name string
		n    int
	}
	var all []kv
	for c, n := range r.errs {
		all = append(all, kv{strings.ToUpper(c.String()), n})
	}
	if r.shed > 0 {
		all = append(all, kv{"SHED", r.shed})
	}
	if len(all) == 0 {
		return "none"
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].name < all[j].name })
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s %d", e.name, e.n))
	}
	return strings.Join(parts, ", ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// verdict compares f (Fulcrum) with base (round_robin) from the measured
// numbers only.
func verdict(f, base *result) string {
	fs, bs := f.successPct(), base.successPct()
	var succ string
	switch {
	case fs > bs:
		succ = fmt.Sprintf("%.2f%% vs %.2f%% success (%.0fx fewer failed RPCs)", fs, bs, failRatio(base, f))
	case fs < bs:
		succ = fmt.Sprintf("%.2f%% vs %.2f%% success (more failed RPCs)", fs, bs)
	default:
		succ = fmt.Sprintf("%.2f%% success for both", fs)
	}
	return fmt.Sprintf("Verdict: %s vs %s: %s; %s; the failing backend got %s vs %s of the RPCs, the slow one %s vs %s.",
		f.policy, base.policy, succ, compareP99(f, base),
		share(f, failingIndex), share(base, failingIndex), share(f, slowIndex), share(base, slowIndex))
}

// compareP99 says how f's p99 compares with base's; within 5% counts as
// the same, closer than run-to-run noise on a busy machine.
func compareP99(f, base *result) string {
	fp, bp := f.percentile(0.99), base.percentile(0.99)
	if fp == 0 || bp == 0 {
		return "p99 not measured"
	}
	s := fmt.Sprintf("p99 %s vs %s", fmtDur(fp), fmtDur(bp))
	switch r := float64(fp) / float64(bp); {
	case r < 0.95:
		return fmt.Sprintf("%s (%.1fx lower)", s, 1/r)
	case r > 1.05:
		return fmt.Sprintf("%s (%.1fx higher)", s, r)
	}
	return s + " (within 5%)"
}

// share is backend i's share of the RPCs r's backends received.
func share(r *result, i int) string {
	var total int64
	for _, h := range r.hits {
		total += h
	}
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(r.hits[i])/float64(total))
}

// failRatio is how many times more RPCs base failed than f; with no
// failures in f it counts f as one failure, an understatement.
func failRatio(base, f *result) float64 {
	bf := float64(base.attempts - base.ok)
	ff := float64(f.attempts - f.ok)
	return bf / max(ff, 1)
}
