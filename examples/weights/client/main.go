// Command client sends RPCs through Fulcrum to backends listed with weights
// in a fulcrum://static target and checks that each backend's share of the
// RPCs follows its weight.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	// Registers the weighted_least_request policy and the fulcrum:// scheme.
	_ "github.com/fulcrum-lb/fulcrum"
)

var (
	target      = flag.String("target", "fulcrum://static/127.0.0.1:50051=1,127.0.0.1:50052=2,127.0.0.1:50053=4", "fulcrum://static target: host:port=weight,...")
	rpcs        = flag.Int("n", 4000, "RPCs to send")
	concurrency = flag.Int("concurrency", 8, "RPCs in flight at a time")
	tolerance   = flag.Float64("tolerance", 3, "largest allowed gap between a share and its ideal, in percentage points")
	timeout     = flag.Duration("timeout", 30*time.Second, "give up after this long")
)

// The policy with its defaults; weights come from the target.
const serviceConfig = `{"loadBalancingConfig":[{"weighted_least_request":{}}]}`

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	addrs, weights, err := parseStatic(*target)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	cc, err := grpc.NewClient(*target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	// Warm up until every backend has answered once: the policy holds a new
	// connection back until its first health probe succeeds, so the first
	// few RPCs go to whichever backend was ready first. The shares below
	// are those of the steady state.
	seen := make(map[string]bool)
	for len(seen) < len(addrs) {
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("warm-up: %v (are the servers running?)", err)
		}
		seen[resp.GetHostname()] = true
	}

	var (
		mu     sync.Mutex
		counts = make(map[string]int)
		failed int
		wg     sync.WaitGroup
		next   = make(chan struct{})
	)
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
				mu.Lock()
				if err != nil {
					failed++
				} else {
					counts[resp.GetHostname()]++
				}
				mu.Unlock()
			}
		}()
	}
	for range *rpcs {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	if failed > 0 {
		return fmt.Errorf("%d of %d RPCs failed", failed, *rpcs)
	}

	var wsum uint64
	for _, w := range weights {
		wsum += w
	}
	fmt.Printf("%d RPCs through %s\n", *rpcs, *target)
	ok := true
	var shares, ws []string
	for i, a := range addrs {
		share := 100 * float64(counts[a]) / float64(*rpcs)
		ideal := 100 * float64(weights[i]) / float64(wsum)
		mark := ""
		if math.Abs(share-ideal) > *tolerance {
			mark = fmt.Sprintf("  <- more than %g points off", *tolerance)
			ok = false
		}
		fmt.Printf("  %-21s weight %-3d %5d RPCs  %5.1f%%  (ideal %4.1f%%)%s\n", a, weights[i], counts[a], share, ideal, mark)
		shares = append(shares, fmt.Sprintf("%.1f%%", share))
		ws = append(ws, strconv.FormatUint(weights[i], 10))
	}
	if !ok {
		return fmt.Errorf("shares do not follow weights %s (%s)", strings.Join(ws, ":"), strings.Join(shares, " "))
	}
	fmt.Printf("OK: shares follow weights %s (%s)\n", strings.Join(ws, ":"), strings.Join(shares, " "))
	return nil
}

// parseStatic reads the addresses and weights of a fulcrum://static target
// (host:port[=weight],...; weight 1 when absent) so that the client knows
// which shares to expect. The resolver does its own, stricter parsing.
func parseStatic(t string) ([]string, []uint64, error) {
	list, ok := strings.CutPrefix(t, "fulcrum://static/")
	if !ok || list == "" {
		return nil, nil, fmt.Errorf("target: %q, must be fulcrum://static/host:port=weight,...", t)
	}
	var addrs []string
	var weights []uint64
	for _, e := range strings.Split(list, ",") {
		addr, ws, has := strings.Cut(e, "=")
		w := uint64(1)
		if has {
			var err error
			if w, err = strconv.ParseUint(ws, 10, 32); err != nil || w == 0 {
				return nil, nil, fmt.Errorf("target: weight %q of %s, must be a positive integer", ws, addr)
			}
		}
		addrs = append(addrs, addr)
		weights = append(weights, w)
	}
	return addrs, weights, nil
}
