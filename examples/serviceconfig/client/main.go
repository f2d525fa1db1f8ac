// Command client drives a steady load through Fulcrum with a fully tuned
// service config and checks that a backend which turns bad is ejected
// while the RPCs keep succeeding.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"

	// Registers the weighted_least_request policy and the fulcrum:// scheme.
	_ "github.com/fulcrum-lb/fulcrum"
)

var (
	target     = flag.String("target", "fulcrum://static/127.0.0.1:50061,127.0.0.1:50062,127.0.0.1:50063", "where the backends are")
	rate       = flag.Int("rate", 400, "RPCs started per second")
	duration   = flag.Duration("duration", 6*time.Second, "how long to send")
	minSuccess = flag.Float64("min-success", 99, "lowest acceptable success rate, in percent")
)

// serviceConfig sets every field of the policy (README explains each).
// Compared with the defaults it reacts faster: the breaker trips after 3
// consecutive failures instead of 5, probes run every 500ms instead of
// every second and two failed probes eject.
const serviceConfig = `{
  "loadBalancingConfig": [{"weighted_least_request": {
    "choiceCount": 2,
    "activeRequestBias": 1.0,
    "latencyAware": true,
    "latencyDecay": "1s",
    "panicThresholdPercent": 50,
    "maxEjectionPercent": 50,
    "breaker": {
      "enabled": true,
      "consecutiveFailures": 3,
      "failureRatio": 0.5,
      "minRequests": 20,
      "window": "10s",
      "openDuration": "5s",
      "maxOpenDuration": "1m",
      "halfOpenRequests": 2,
      "failureCodes": ["UNAVAILABLE", "INTERNAL", "DATA_LOSS", "RESOURCE_EXHAUSTED"]
    },
    "healthProbe": {
      "enabled": true,
      "service": "grpc.testing.TestService",
      "interval": "500ms",
      "timeout": "250ms",
      "jitter": 0.2,
      "unhealthyThreshold": 2,
      "healthyThreshold": 2,
      "warmup": true,
      "unimplementedIsHealthy": false
    },
    "slowStart": {"window": "5s", "aggression": 1.0, "minWeightPercent": 10}
  }}],
  "methodConfig": [{"name": [{"service": "grpc.testing.TestService"}], "timeout": "1s"}]
}`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

// outcome of one RPC.
type outcome struct {
	second int    // since the start of the load
	addr   string // backend that got it ("" if it never left the client)
	ok     bool
}

func run() error {
	if *rate < 1 {
		return fmt.Errorf("rate: %d, must be >= 1", *rate)
	}
	if *duration < 3*time.Second {
		return fmt.Errorf("duration: %v, must be >= 3s (the check compares the first and the last two seconds)", *duration)
	}
	cc, err := grpc.NewClient(*target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	list, ok := strings.CutPrefix(*target, "fulcrum://static/")
	if !ok {
		return fmt.Errorf("target: %q, must be fulcrum://static/host:port,... (the client reads the backends from it)", *target)
	}
	listed := strings.Split(list, ",")
	nBackends := len(listed)

	// Warm up until every backend has answered once (a new connection is
	// held back until its first health probe passes), for at most 3s.
	warm, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	seen := make(map[string]bool)
	for len(seen) < nBackends && warm.Err() == nil {
		if resp, err := client.UnaryCall(warm, &testpb.SimpleRequest{}, grpc.WaitForReady(true)); err == nil {
			seen[resp.GetHostname()] = true
		}
	}
	cancel()
	if len(seen) == 0 {
		return fmt.Errorf("no backend answered within 3s (are the servers running?)")
	}

	// Open loop: a fixed rate whatever the backends do.
	interval := time.Second / time.Duration(*rate)
	n := int(*duration / interval)
	outs := make([]outcome, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p peer.Peer
			_, err := client.UnaryCall(context.Background(), &testpb.SimpleRequest{}, grpc.Peer(&p))
			o := outcome{second: int(due.Sub(start) / time.Second), ok: err == nil}
			if p.Addr != nil {
				o.addr = p.Addr.String()
			}
			outs[i] = o
		}()
	}
	wg.Wait()
	return report(listed, outs, int((*duration+time.Second-1)/time.Second))
}

// report prints RPCs per backend and second and decides whether a backend
// was ejected: it received RPCs during the run but under 1% of them in the
// last two seconds.
func report(listed []string, outs []outcome, seconds int) error {
	type cell struct{ ok, failed int }
	var addrs []string // columns: the target's order, then any other
	grid := make(map[string][]cell)
	for _, a := range listed {
		grid[a] = make([]cell, seconds)
		addrs = append(addrs, a)
	}
	perSecond := make([]int, seconds)
	okN := 0
	for _, o := range outs {
		perSecond[o.second]++
		if o.ok {
			okN++
		}
		if _, ok := grid[o.addr]; !ok {
			grid[o.addr] = make([]cell, seconds)
			addrs = append(addrs, o.addr)
		}
		c := &grid[o.addr][o.second]
		if o.ok {
			c.ok++
		} else {
			c.failed++
		}
	}

	fmt.Println("RPCs per backend and second (failed ones in parentheses):")
	fmt.Printf("%-7s", "second")
	for _, a := range addrs {
		name := a
		if name == "" {
			name = "(no backend)"
		}
		fmt.Printf(" %18s", name)
	}
	fmt.Println()
	for s := range seconds {
		fmt.Printf("%-7d", s+1)
		for _, a := range addrs {
			c := grid[a][s]
			v := fmt.Sprint(c.ok + c.failed)
			if c.failed > 0 {
				v += fmt.Sprintf(" (%d)", c.failed)
			}
			fmt.Printf(" %18s", v)
		}
		fmt.Println()
	}
	success := 100 * float64(okN) / float64(len(outs))
	fmt.Printf("success: %d of %d RPCs (%.2f%%)\n", okN, len(outs), success)

	lastTwo := perSecond[seconds-1] + perSecond[seconds-2]
	ejected, first, lateN := "", 0, 0
	for _, a := range addrs {
		if a == "" {
			continue
		}
		late, peak := 0, 0
		for s, c := range grid[a] {
			if s >= seconds-2 {
				late += c.ok + c.failed
			} else {
				peak = max(peak, c.ok+c.failed)
			}
		}
		if peak > 0 && float64(late) < 0.01*float64(lastTwo) {
			ejected, first, lateN = a, grid[a][0].ok+grid[a][0].failed, late
			break
		}
	}
	switch {
	case ejected == "":
		return fmt.Errorf("no backend was ejected (was the server started with -fail, and restarted since the last run?)")
	case success < *minSuccess:
		return fmt.Errorf("%s was ejected but success was %.2f%%, want >= %g%%", ejected, success, *minSuccess)
	}
	fmt.Printf("OK: %s was ejected (%d RPCs in second 1, %d in seconds %d-%d); success %.2f%% >= %g%%\n",
		ejected, first, lateN, seconds-1, seconds, success, *minSuccess)
	return nil
}
