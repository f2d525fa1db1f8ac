// Command client dials xds:///svc through grpc-go's xDS client, whose
// bootstrap (GRPC_XDS_BOOTSTRAP) points at the control plane; the cluster it
// receives names Fulcrum's weighted_least_request policy. It sends RPCs and
// checks that each backend's share follows its EDS weight.
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
	// Registers the xds:/// scheme and grpc-go's xDS balancers.
	_ "google.golang.org/grpc/xds"

	// Registers weighted_least_request, which the cluster names.
	_ "github.com/fulcrum-lb/fulcrum"
)

var (
	expect      = flag.String("expect", "127.0.0.1:50051=1,127.0.0.1:50052=2,127.0.0.1:50053=4", "the backends and EDS weights the control plane serves: host:port=weight,...")
	rpcs        = flag.Int("n", 4000, "RPCs to send")
	concurrency = flag.Int("concurrency", 8, "RPCs in flight at a time")
	tolerance   = flag.Float64("tolerance", 3, "largest allowed gap between a share and its ideal, in percentage points")
	timeout     = flag.Duration("timeout", 30*time.Second, "give up after this long")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		return fmt.Errorf("GRPC_XDS_BOOTSTRAP is not set; run the control plane and set it to the file it wrote")
	}
	addrs, weights, err := parseExpect(*expect)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cc, err := grpc.NewClient("xds:///svc", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	// Warm up until every backend has answered once: Fulcrum holds a new
	// connection back until its first health probe succeeds.
	seen := make(map[string]bool)
	for len(seen) < len(addrs) {
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("warm-up: %v (are the control plane and the servers running?)", err)
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
		wg.Go(func() {
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
		})
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
	fmt.Printf("%d RPCs through xds:///svc\n", *rpcs)
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
		fmt.Printf("  %-21s EDS weight %-3d %5d RPCs  %5.1f%%  (ideal %4.1f%%)%s\n", a, weights[i], counts[a], share, ideal, mark)
		shares = append(shares, fmt.Sprintf("%.1f%%", share))
		ws = append(ws, strconv.FormatUint(weights[i], 10))
	}
	if !ok {
		return fmt.Errorf("shares do not follow EDS weights %s (%s)", strings.Join(ws, ":"), strings.Join(shares, " "))
	}
	fmt.Printf("OK: shares follow EDS weights %s (%s)\n", strings.Join(ws, ":"), strings.Join(shares, " "))
	return nil
}

func parseExpect(s string) ([]string, []uint64, error) {
	var addrs []string
	var weights []uint64
	for _, e := range strings.Split(s, ",") {
		addr, ws, _ := strings.Cut(strings.TrimSpace(e), "=")
		w, err := strconv.ParseUint(ws, 10, 32)
		if err != nil || w == 0 {
			return nil, nil, fmt.Errorf("expect: %q, must be host:port=weight with weight >= 1", e)
		}
		addrs = append(addrs, addr)
		weights = append(weights, w)
	}
	return addrs, weights, nil
}
