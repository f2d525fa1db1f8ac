package fulcrum_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
)

const defaultTestTimeout = 5 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hedgeFleet is a set of real servers on 127.0.0.1 that share one view of
// the calls they receive: per call (metadata "x-call"), the address of
// every arrival, and the attempts whose context the server saw cancelled.
type hedgeFleet struct {
	addrs []string
	total atomic.Int64 // application requests received, all servers
	// behave decides what arrival number k (0-based) of call id does on
	// server addr: it returns how long to take, or hang (block until the
	// context ends).
	behave func(id string, k int, addr string) (d time.Duration, hang bool)

	mu        sync.Mutex
	arrivals  map[string][]string
	cancelled int
}

type hedgeServer struct {
	testgrpc.UnimplementedTestServiceServer
	f    *hedgeFleet
	addr string
}

func (s *hedgeServer) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	f := s.f
	f.total.Add(1)
	md, _ := metadata.FromIncomingContext(ctx)
	id := strings.Join(md.Get("x-call"), "")
	f.mu.Lock()
	k := len(f.arrivals[id])
	f.arrivals[id] = append(f.arrivals[id], s.addr)
	f.mu.Unlock()
	grpc.SetHeader(ctx, metadata.Pairs("x-server", s.addr))
	if strings.HasPrefix(id, "warm") {
		return &testpb.SimpleResponse{Hostname: s.addr}, nil
	}
	d, hang := f.behave(id, k, s.addr)
	if hang {
		<-ctx.Done()
		f.mu.Lock()
		f.cancelled++
		f.mu.Unlock()
		return nil, ctx.Err()
	}
	if d < 0 {
		return nil, status.Error(codes.Unavailable, "shedding")
	}
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	return &testpb.SimpleResponse{Hostname: s.addr}, nil
}

func startHedgeFleet(t testing.TB, n int, behave func(id string, k int, addr string) (time.Duration, bool)) *hedgeFleet {
	t.Helper()
	f := &hedgeFleet{behave: behave, arrivals: map[string][]string{}}
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(srv, &hedgeServer{f: f, addr: lis.Addr().String()})
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		f.addrs = append(f.addrs, lis.Addr().String())
	}
	return f
}

func (f *hedgeFleet) arrivalsOf(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.arrivals[id]...)
}

func (f *hedgeFleet) cancelledCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cancelled
}

// dialHedged connects to f through weighted_least_request with hedging.
// extra is appended to the policy's JSON (e.g. `,"activeRequestBias":0`).
func dialHedged(t testing.TB, f *hedgeFleet, p *fulcrum.HedgingPolicy, extra string) testgrpc.TestServiceClient {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"weighted_least_request":{"healthProbe":{"enabled":false},"slowStart":{"window":"0s"}` + extra + `}}]}`),
	}
	if p != nil {
		opts = append(opts, fulcrum.WithHedging(*p))
	}
	cc, err := grpc.NewClient("fulcrum://static/"+strings.Join(f.addrs, ","), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// warmUp calls until n endpoints have answered: until then a hedge may
// have nowhere to go (the others still connecting).
func warmUp(ctx context.Context, t *testing.T, client testgrpc.TestServiceClient, n int) {
	t.Helper()
	for seen := map[string]bool{}; len(seen) < n; {
		resp, err := client.UnaryCall(callID(ctx, "warm"), &testpb.SimpleRequest{})
		if err != nil {
			t.Fatalf("warm-up call: %v", err)
		}
		seen[resp.GetHostname()] = true
	}
}

func callID(ctx context.Context, id string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-call", id)
}

// TestHedging_HedgeGoesElsewhereLoserCancelled: the first attempt of every
// call hangs; after the fixed delay the hedge must go to another endpoint
// (selection is weighted random here, activeRequestBias 0, so without the
// exclusion a hedge would land on the hung endpoint a third of the time),
// win, and the hung attempt must be cancelled on its server. The caller's
// header and peer are the winner's.
func TestHedging_HedgeGoesElsewhereLoserCancelled(t *testing.T) {
	f := startHedgeFleet(t, 3, func(_ string, k int, _ string) (time.Duration, bool) { return 0, k == 0 })
	client := dialHedged(t, f, &fulcrum.HedgingPolicy{Delay: 20 * time.Millisecond, MinHedgesPerSecond: 100}, `,"activeRequestBias":0`)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	warmUp(ctx, t, client, 3)
	const calls = 20
	for i := range calls {
		id := string(rune('a' + i))
		var hdr metadata.MD
		var p peer.Peer
		resp, err := client.UnaryCall(callID(ctx, id), &testpb.SimpleRequest{}, grpc.Header(&hdr), grpc.Peer(&p))
		if err != nil {
			t.Fatalf("call %s: %v", id, err)
		}
		f.mu.Lock()
		arr := append([]string(nil), f.arrivals[id]...)
		f.mu.Unlock()
		if len(arr) != 2 || arr[0] == arr[1] {
			t.Fatalf("call %s reached %v, want two different endpoints", id, arr)
		}
		if resp.GetHostname() != arr[1] {
			t.Errorf("call %s: answered by %s, want the hedge's endpoint %s", id, resp.GetHostname(), arr[1])
		}
		if got := strings.Join(hdr.Get("x-server"), ""); got != arr[1] {
			t.Errorf("call %s: header x-server %q, want the winner's %s", id, got, arr[1])
		}
		if p.Addr == nil || p.Addr.String() != arr[1] {
			t.Errorf("call %s: peer %v, want the winner %s", id, p.Addr, arr[1])
		}
	}
	for f.cancelledCount() < calls {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d losing attempts seen cancelled by their server", f.cancelledCount(), calls)
		}
		time.Sleep(time.Millisecond)
	}
	// The balancer learnt the channel's hedger from the picks: fulcrumz
	// shows the delay (and the hedging metrics go to the channel's).
	target := "fulcrum://static/" + strings.Join(f.addrs, ",")
	var hg *fulcrumz.Hedging
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Target == target {
			hg = ch.Hedging
		}
	}
	if hg == nil || hg.Adaptive || hg.DelaySeconds != 0.02 {
		t.Errorf("fulcrumz hedging of %s: %+v, want the fixed 20ms delay", target, hg)
	}
}

// TestHedging_BudgetHoldsUnderOverload: every endpoint is slower than the
// delay, so every call wants a hedge; the budget (5 % of calls plus a
// reserve of minHedgesPerSecond x 10 s = 1) caps what the servers receive.
func TestHedging_BudgetHoldsUnderOverload(t *testing.T) {
	f := startHedgeFleet(t, 3, func(string, int, string) (time.Duration, bool) { return 20 * time.Millisecond, false })
	client := dialHedged(t, f, &fulcrum.HedgingPolicy{Delay: time.Millisecond, MaxExtraLoadPercent: 5, MinHedgesPerSecond: 0.1}, "")
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	const calls, workers = 200, 10
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := w; i < calls; i += workers {
				if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d calls failed", n)
	}
	extra := f.total.Load() - calls
	if limit := int64(calls*5/100 + 1); extra > limit || extra < 1 {
		t.Fatalf("servers received %d requests for %d calls: %d extra, want 1..%d (5 %% + the reserve)", f.total.Load(), calls, extra, limit)
	}
}

// TestHedging_NearlySpentDeadlineNotHedged: a call whose deadline leaves
// less than minDelay after the hedging delay is not hedged; the same call
// with time to spare is (the control, so the test can fail).
func TestHedging_NearlySpentDeadlineNotHedged(t *testing.T) {
	f := startHedgeFleet(t, 2, func(_ string, k int, _ string) (time.Duration, bool) { return 0, k == 0 })
	client := dialHedged(t, f, &fulcrum.HedgingPolicy{Delay: 100 * time.Millisecond, MinDelay: 10 * time.Millisecond, MinHedgesPerSecond: 100}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 105*time.Millisecond)
	defer cancel()
	_, err := client.UnaryCall(callID(ctx, "short"), &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("short call: %v, want DEADLINE_EXCEEDED (its first attempt hangs)", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel2()
	if _, err := client.UnaryCall(callID(ctx2, "long"), &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("long call: %v", err)
	}
	f.mu.Lock()
	short, long := len(f.arrivals["short"]), len(f.arrivals["long"])
	f.mu.Unlock()
	if short != 1 || long != 2 {
		t.Fatalf("attempts: %d for the call with 105ms, %d for the call with 5s; want 1 and 2", short, long)
	}
}

// TestHedging_NonFatalSendsNextAtOnce: with UNAVAILABLE listed as
// non-fatal (gRFC A6), a first attempt failing with it does not end the
// call: the next goes at once (the delay is a minute), to another
// endpoint, and wins; OnFinish is called once, with the call's result.
// Without the list, the failure is the call's.
func TestHedging_NonFatalSendsNextAtOnce(t *testing.T) {
	f := startHedgeFleet(t, 2, func(id string, k int, _ string) (time.Duration, bool) {
		if k == 0 && (id == "nf" || id == "fatal") {
			return -1, false // UNAVAILABLE
		}
		return 0, false
	})
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	client := dialHedged(t, f, &fulcrum.HedgingPolicy{Delay: time.Minute, MinHedgesPerSecond: 100, NonFatalStatusCodes: []codes.Code{codes.Unavailable}}, "")
	warmUp(ctx, t, client, 2)
	var finished []error
	if _, err := client.UnaryCall(callID(ctx, "nf"), &testpb.SimpleRequest{}, grpc.OnFinish(func(err error) { finished = append(finished, err) })); err != nil {
		t.Fatalf("call: %v", err)
	}
	arr := f.arrivalsOf("nf")
	if len(arr) != 2 || arr[0] == arr[1] {
		t.Fatalf("call reached %v, want two endpoints", arr)
	}
	if len(finished) != 1 || finished[0] != nil {
		t.Fatalf("OnFinish calls %v, want one, with nil", finished)
	}
	plain := dialHedged(t, f, &fulcrum.HedgingPolicy{Delay: time.Minute, MinHedgesPerSecond: 100}, "")
	if _, err := plain.UnaryCall(callID(ctx, "fatal"), &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("call without non-fatal codes: %v, want the first attempt's UNAVAILABLE", err)
	}
}

// TestHedging_InvalidPolicy: a policy out of bounds fails every call with
// the field's error.
func TestHedging_InvalidPolicy(t *testing.T) {
	f := startHedgeFleet(t, 1, func(string, int, string) (time.Duration, bool) { return 0, false })
	client := dialHedged(t, f, &fulcrum.HedgingPolicy{MaxAttempts: 9}, "")
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "fulcrum: hedging: maxAttempts: 9, must be in [2, 5]") {
		t.Fatalf("call with maxAttempts 9: %v", err)
	}
}
