package xds_test

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"

	// Registers random_subsetting_experimental (gRFC A68).
	_ "google.golang.org/grpc/balancer/randomsubsetting"

	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// subsettingConfig puts Fulcrum under grpc-go's random subsetting: each
// channel keeps a random subset of subsetSize endpoints, and Fulcrum
// balances inside it.
const subsettingConfig = `{"loadBalancingConfig": [{"random_subsetting_experimental": {
	"subsetSize": 5,
	"childPolicy": [{"weighted_least_request": {"latencyAware": false}}]
}}]}`

// connRecorder is a client stats handler that records the remote address
// of every connection its channel opens.
type connRecorder struct {
	mu    sync.Mutex
	addrs map[string]int
}

func (r *connRecorder) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs[info.RemoteAddr.String()]++
	return ctx
}
func (r *connRecorder) HandleConn(context.Context, stats.ConnStats) {}
func (r *connRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (r *connRecorder) HandleRPC(context.Context, stats.RPCStats) {}

func (r *connRecorder) connected() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.addrs)
}

// TestSubsetting_FulcrumBalancesInsideEachChannelsSubset runs 20 backends
// and 4 channels, each with random_subsetting_experimental (subset 5) over
// Fulcrum. Each channel must open exactly one connection to each of 5
// backends and none to the others, send every RPC to those 5 with equal
// shares, and the channels' subsets must differ; backends in no subset get
// neither RPCs nor health probes.
func TestSubsetting_FulcrumBalancesInsideEachChannelsSubset(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	const (
		backends   = 20
		channels   = 4
		subsetSize = 5
		n          = 500 // RPCs per channel
	)
	fleet, err := testutil.StartFleet(backends, testutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	target := "fulcrum://static/" + strings.Join(fleet.Addrs(), ",")

	used := make(map[string]bool) // backends in some channel's subset
	for ch := range channels {
		rec := &connRecorder{addrs: make(map[string]int)}
		cc, err := grpc.NewClient(target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(subsettingConfig),
			grpc.WithStatsHandler(rec))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		c := testgrpc.NewTestServiceClient(cc)

		// The subset is what the channel connects to; warm up on it.
		var subset []string
		for len(subset) < subsetSize {
			if _, err := call(ctx, c, grpc.WaitForReady(true)); err != nil {
				t.Fatalf("channel %d: %v", ch, err)
			}
			subset = slices.Sorted(maps.Keys(rec.connected()))
		}
		warmUp(ctx, t, c, subset...)
		got := count(ctx, t, c, n)

		conns := rec.connected()
		if len(conns) != subsetSize {
			t.Errorf("channel %d connected to %d backends %v, want %d", ch, len(conns), conns, subsetSize)
		}
		for a, k := range conns {
			if k != 1 {
				t.Errorf("channel %d opened %d connections to %s, want 1", ch, k, a)
			}
			used[a] = true
		}
		// Equal weights, one RPC at a time: each subset member's share is
		// binomial around 1/5; 4 standard deviations (7.2 points at n = 500)
		// make a spurious failure a 1-in-15000 event per backend.
		p := 1.0 / subsetSize
		tol := 4 * math.Sqrt(p*(1-p)/n)
		var shares []string
		for a, k := range got {
			if _, ok := conns[a]; !ok {
				t.Errorf("channel %d: backend %s outside its subset %v answered %d RPCs", ch, a, subset, k)
			}
		}
		for _, a := range subset {
			share := float64(got[a]) / n
			shares = append(shares, fmt.Sprintf("%.0f%%", 100*share))
			if math.Abs(share-p) > tol {
				t.Errorf("channel %d: backend %s share %.1f%%, want %.0f%% ± %.1f", ch, a, 100*share, 100*p, 100*tol)
			}
		}
		t.Logf("channel %d: subset %v, shares %v", ch, subset, shares)
	}
	// 4 random 5-of-20 subsets are all equal with probability 1/15504^3.
	if len(used) == subsetSize {
		t.Errorf("all %d channels chose the same subset %v, want random subsets", channels, used)
	}
	for _, b := range fleet {
		if !used[b.Addr] && (b.Hits() != 0 || b.Checks() != 0) {
			t.Errorf("backend %s is in no subset but got %d RPCs and %d probes, want none", b.Addr, b.Hits(), b.Checks())
		}
	}
	t.Logf("%d channels used %d of %d backends", channels, len(used), backends)
}
