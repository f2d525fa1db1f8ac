package balancer

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

const defaultTestTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(closeBenchBalancers{m})
}

// closeBenchBalancers closes the balancers the benchmarks keep for the
// whole run (cachedReadyBalancer) before goleak looks for goroutines.
type closeBenchBalancers struct{ m *testing.M }

func (c closeBenchBalancers) Run() int {
	code := c.m.Run()
	for _, bb := range readyBalancers {
		bb.bal.Close()
	}
	return code
}

// noProbe turns off the features that need a real health service or time
// to pass, for tests of plain selection.
const noProbe = `"healthProbe":{"enabled":false},"slowStart":{"window":"0s"}`

// startFleet starts n real backends on 127.0.0.1, stopped at test end.
func startFleet(t *testing.T, n int) testutil.Fleet {
	t.Helper()
	f, err := testutil.StartFleet(n, testutil.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// endpoints returns one endpoint per address, with weights if given.
func endpoints(addrs []string, weights ...uint32) []resolver.Endpoint {
	eps := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}
		if i < len(weights) {
			eps[i] = attrs.SetWeight(eps[i], weights[i])
		}
	}
	return eps
}

type client struct {
	cc  *grpc.ClientConn
	tc  testgrpc.TestServiceClient
	r   *manual.Resolver
	bal chan *wlrBalancer
}

// newClient dials a manual resolver carrying eps with the policy configured
// by lbJSON (the object under "weighted_least_request"). It captures the
// balancer the channel builds.
func newClient(t *testing.T, lbJSON string, eps []resolver.Endpoint) *client {
	t.Helper()
	r := manual.NewBuilderWithScheme(fmt.Sprintf("wlrtest%d", time.Now().UnixNano()))
	r.InitialState(resolver.State{Endpoints: eps})
	c := &client{r: r, bal: make(chan *wlrBalancer, 4)}
	buildHook = func(b *wlrBalancer) {
		select {
		case c.bal <- b:
		default:
		}
	}
	t.Cleanup(func() { buildHook = nil })
	sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:%s}]}`, Name, lbJSON)
	cc, err := grpc.NewClient(r.Scheme()+":///test",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(sc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	cc.Connect()
	c.cc = cc
	c.tc = testgrpc.NewTestServiceClient(cc)
	return c
}

// balancer returns the balancer the channel built (waits for it).
func (c *client) balancer(t *testing.T) *wlrBalancer {
	t.Helper()
	select {
	case b := <-c.bal:
		c.bal <- b
		return b
	case <-time.After(defaultTestTimeout):
		t.Fatal("balancer was never built")
	}
	return nil
}

// waitAllServing sends RPCs until every backend in f has served one.
func waitAllServing(t *testing.T, c *client, f testutil.Fleet) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	for {
		all := true
		for _, h := range f.Hits() {
			if h == 0 {
				all = false
			}
		}
		if all {
			f.ResetHits()
			return
		}
		if _, err := c.tc.EmptyCall(ctx, &testpb.Empty{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("EmptyCall while waiting for backends: %v", err)
		}
	}
}

// run sends total RPCs from callers goroutines and returns the number of
// failures.
func run(ctx context.Context, c *client, callers, total int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	fails := 0
	per := total / callers
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := c.tc.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
					mu.Lock()
					fails++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return fails
}

// shares turns hit counts into percentages.
func shares(hits []int64) []float64 {
	var sum int64
	for _, h := range hits {
		sum += h
	}
	s := make([]float64, len(hits))
	for i, h := range hits {
		s[i] = 100 * float64(h) / math.Max(1, float64(sum))
	}
	return s
}
