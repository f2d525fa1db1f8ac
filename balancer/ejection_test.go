package balancer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// result of a paced load run.
type result struct {
	ok, failed int
	codes      map[codes.Code]int
	firstErr   error
}

func (r result) successRate() float64 {
	return 100 * float64(r.ok) / float64(max(1, r.ok+r.failed))
}

// pace sends RPCs at rps for d (open loop, at most 64 in flight, loopback
// only) and counts outcomes. It stops by itself.
func pace(ctx context.Context, tc testgrpc.TestServiceClient, rps int, d time.Duration) result {
	var mu sync.Mutex
	r := result{codes: map[codes.Code]int{}}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rps)
	start := time.Now()
	for i := 0; time.Since(start) < d && ctx.Err() == nil; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, err := tc.UnaryCall(rctx, &testpb.SimpleRequest{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				r.failed++
				r.codes[status.Code(err)]++
				if r.firstErr == nil {
					r.firstErr = err
				}
				return
			}
			r.ok++
		}()
	}
	wg.Wait()
	return r
}

// TestBreaker_EjectsFastFailingBackend: one of four backends answers every
// RPC with UNAVAILABLE while its connection stays up. The number of RPCs it
// costs is fixed by the breaker, not by the machine's speed: with 4
// closed-loop callers, the 5 consecutive failures that trip it plus at most
// 3 more already picked by the other callers, then exactly one trial per
// open period. The engine's clock is fake, so the open period ends only
// when the test says so. round_robin over the same fleet, for contrast,
// loses a quarter of its RPCs (binomial: 1000 RPCs, sd 1.4 points; 70..80
// is more than 3 sd either way).
func TestBreaker_EjectsFastFailingBackend(t *testing.T) {
	clock := useFakeClock(t)
	f := startFleet(t, 4)
	c := newClient(t, `{"healthProbe":{"enabled":false}}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	b := c.balancer(t)
	f[3].SetFailure(codes.Unavailable)

	ctx, cancel := context.WithTimeout(context.Background(), 3*defaultTestTimeout)
	defer cancel()
	fails := run(ctx, c, 4, 4000)
	if h := f[3].Hits(); h < 5 || h > 5+3 {
		t.Errorf("failing backend received %d RPCs, want 5 (the trip) + at most 3 in flight", h)
	}
	if int64(fails) != f[3].Hits() {
		t.Errorf("%d RPCs failed but the failing backend got %d: RPCs failed elsewhere", fails, f[3].Hits())
	}
	waitFor(t, "failing backend ejected", func() bool { return results(b)[f[3].Addr].State == endpointset.Ejected })

	// One open period (5s): exactly one trial, which fails and reopens.
	before := f[3].Hits()
	clock.advance(b, 5*time.Second)
	waitFor(t, "trial due", func() bool { return results(b)[f[3].Addr].State == endpointset.Usable })
	waitPublished(t, b)
	run(ctx, c, 4, 400)
	if h := f[3].Hits() - before; h != 1 {
		t.Errorf("failing backend received %d RPCs after its open period, want exactly 1 trial", h)
	}
	if st := breakerStates(b)[f[3].Addr]; st != breaker.Open {
		t.Errorf("failing backend's breaker is %v after its failed trial, want open", st)
	}

	// The same fleet through round_robin, for contrast.
	rr, err := grpc.NewClient(fmt.Sprintf("%s:///rr", c.r.Scheme()),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(c.r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	rrResult := pace(ctx, testgrpc.NewTestServiceClient(rr), 500, 2*time.Second)
	t.Logf("round_robin: success %.1f%% of %d", rrResult.successRate(), rrResult.ok+rrResult.failed)
	if s := rrResult.successRate(); s < 70 || s > 80 {
		t.Errorf("round_robin success %.1f%%, expected ~75%% with one of four failing", s)
	}
}

// TestBreaker_HealedBackendReturns: with an injected breaker clock, a
// healed backend is back to its fair share within one open duration plus
// the trial phase.
func TestBreaker_HealedBackendReturns(t *testing.T) {
	clock := useFakeClock(t)
	f := startFleet(t, 4)
	c := newClient(t, `{"healthProbe":{"enabled":false},"latencyAware":false,"breaker":{"openDuration":"5s","halfOpenRequests":3}}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	b := c.balancer(t)
	f[3].SetFailure(codes.Unavailable)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	run(ctx, c, 2, 200)
	if st := breakerStates(b)[f[3].Addr]; st != breaker.Open {
		t.Fatalf("breaker of failing backend is %v, want open", st)
	}
	f[3].SetFailure(codes.OK)
	f.ResetHits()
	if fails := run(ctx, c, 2, 200); fails != 0 {
		t.Fatalf("%d RPCs failed while the backend was ejected", fails)
	}
	if h := f[3].Hits(); h != 0 {
		t.Fatalf("ejected backend received %d RPCs before its open period elapsed", h)
	}

	clock.advance(b, 5*time.Second) // one open duration
	f.ResetHits()
	if fails := run(ctx, c, 2, 800); fails != 0 {
		t.Fatalf("%d RPCs failed after healing", fails)
	}
	if st := breakerStates(b)[f[3].Addr]; st != breaker.Closed {
		t.Fatalf("breaker of healed backend is %v, want closed", st)
	}
	if h := f[3].Hits(); h < 3 {
		t.Fatalf("healed backend got %d RPCs, want at least its 3 trials", h)
	}
	// Closed again, it has its fair share, measured from the close. With
	// two callers the shares of four equal backends over 800 RPCs spread
	// from 18 to 32 % (scheduling decides which one is busy), and 17 % for
	// any of them under go test -count=8: the bound is 15 %, well above
	// what an endpoint still held back gets (slow start's floor: 10 %).
	f.ResetHits()
	if fails := run(ctx, c, 2, 800); fails != 0 {
		t.Fatalf("%d RPCs failed after the breaker closed", fails)
	}
	if s := shares(f.Hits()); s[3] < 15 {
		t.Errorf("healed backend got %.1f%% of RPCs, want >= 15%% (shares %.1f)", s[3], s)
	}
}

// TestBreaker_CallerErrorsDoNotTrip: DEADLINE_EXCEEDED caused by the
// caller's own short deadline and cancellations by the caller say nothing
// about the server: no breaker trips, unless DEADLINE_EXCEEDED is
// configured as a failure code.
func TestBreaker_CallerErrorsDoNotTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      string
		wantTrip bool
	}{
		{"defaults", `{"healthProbe":{"enabled":false}}`, false},
		{"deadline-counted", `{"healthProbe":{"enabled":false},"maxEjectionPercent":100,"panicThresholdPercent":0,"breaker":{"failureCodes":["UNAVAILABLE","DEADLINE_EXCEEDED"]}}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFleet(t, 2)
			c := newClient(t, tc.cfg, endpoints(f.Addrs()))
			waitAllServing(t, c, f)
			b := c.balancer(t)
			for _, be := range f {
				be.SetDelay(200 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
			defer cancel()
			for i := 0; i < 30; i++ {
				dctx, dcancel := context.WithTimeout(ctx, 2*time.Millisecond)
				_, err := c.tc.UnaryCall(dctx, &testpb.SimpleRequest{})
				dcancel()
				if code := status.Code(err); code != codes.DeadlineExceeded {
					if tc.wantTrip && code == codes.Unavailable {
						continue // both breakers open: fail fast
					}
					t.Fatalf("short-deadline RPC: %v, want DeadlineExceeded", err)
				}
				cctx, ccancel := context.WithCancel(ctx)
				go func() { time.Sleep(time.Millisecond); ccancel() }()
				_, err = c.tc.UnaryCall(cctx, &testpb.SimpleRequest{})
				if code := status.Code(err); code != codes.Canceled && !(tc.wantTrip && code == codes.Unavailable) {
					t.Fatalf("cancelled RPC: %v, want Canceled", err)
				}
			}
			tripped := 0
			for addr, st := range breakerStates(b) {
				if st != breaker.Closed {
					tripped++
					if !tc.wantTrip {
						t.Errorf("breaker of %s is %v after caller-side errors, want closed", addr, st)
					}
				}
			}
			if tc.wantTrip && tripped == 0 {
				t.Errorf("no breaker tripped although DEADLINE_EXCEEDED counts as a failure")
			}
		})
	}
}

// TestBreaker_MaxEjectionPercent: three of four backends fail with
// maxEjectionPercent 50: at most two are ejected, the third stays in
// rotation despite its breaker.
func TestBreaker_MaxEjectionPercent(t *testing.T) {
	useFakeClock(t) // open periods never elapse: ejections are stable
	f := startFleet(t, 4)
	c := newClient(t, `{"healthProbe":{"enabled":false},"latencyAware":false,"maxEjectionPercent":50}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	for _, be := range f[1:] {
		be.SetFailure(codes.Unavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	run(ctx, c, 2, 400) // trips breakers
	f.ResetHits()
	run(ctx, c, 2, 1000)
	hits := f.Hits()
	inRotation := 0
	for _, h := range hits[1:] {
		if h > 50 {
			inRotation++
		}
	}
	if inRotation != 1 {
		t.Errorf("%d failing backends still in rotation (hits %v), want exactly 1: two ejected at most with maxEjectionPercent 50", inRotation, hits)
	}
	// The healthy backend is not asserted on: the failing backend kept in
	// rotation fails fast, looks idle to least-request and takes most of
	// the traffic (as under Envoy's LEAST_REQUEST with
	// max_ejection_percent); README says so.
}

// TestBreaker_PanicModeSpreadsTraffic: all four backends fail and all may
// be ejected; below panicThresholdPercent the policy ignores breakers and
// spreads traffic over all four instead of failing fast, and says so.
func TestBreaker_PanicModeSpreadsTraffic(t *testing.T) {
	useFakeClock(t)
	f := startFleet(t, 4)
	// The latency term is off: failures are not timed, so estimates left
	// from the first, successful RPCs would weigh on the spread for about
	// latencyDecay, and this test is about panic mode.
	c := newClient(t, `{"healthProbe":{"enabled":false},"latencyAware":false,"maxEjectionPercent":100,"panicThresholdPercent":50}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	b := c.balancer(t)
	for _, be := range f {
		be.SetFailure(codes.Unavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	run(ctx, c, 2, 200) // trips breakers
	waitFor(t, "panic mode", func() bool { return panicking(b) })
	f.ResetHits()
	for i := 0; i < 400; i++ {
		_, err := c.tc.UnaryCall(ctx, &testpb.SimpleRequest{})
		// The error must come from a backend, not from the picker.
		if err == nil || !strings.Contains(err.Error(), "configured to fail") {
			t.Fatalf("RPC %d: %v, want the backends' own UNAVAILABLE", i, err)
		}
	}
	for i, s := range shares(f.Hits()) {
		if s < 10 {
			t.Errorf("backend %d got %.1f%% in panic mode, want traffic spread over all four (hits %v)", i, s, f.Hits())
		}
	}
}

// TestBreaker_AllEjectedNoPanic: with panic mode off and every endpoint
// ejected, RPCs fail fast with a status naming the reason, and
// wait-for-ready RPCs wait instead.
func TestBreaker_AllEjectedNoPanic(t *testing.T) {
	useFakeClock(t)
	f := startFleet(t, 2)
	c := newClient(t, `{"healthProbe":{"enabled":false},"maxEjectionPercent":100,"panicThresholdPercent":0}`, endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	for _, be := range f {
		be.SetFailure(codes.Unavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	run(ctx, c, 1, 40)
	var err error
	waitFor(t, "fail-fast error", func() bool {
		_, err = c.tc.UnaryCall(ctx, &testpb.SimpleRequest{})
		return err != nil && strings.Contains(err.Error(), "2 ejected by breaker")
	})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no usable endpoint among 2: 0 unhealthy, 2 ejected by breaker") {
		t.Errorf("RPC error %v, want UNAVAILABLE naming the 2 endpoints ejected by breaker", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	_, err = c.tc.UnaryCall(wctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("wait-for-ready RPC: %v, want it to wait until its deadline", err)
	}
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBalancer_ResolverErrorWithoutEndpoints: a resolver error before any
// endpoint is known fails RPCs at once with the resolver's reason.
func TestBalancer_ResolverErrorWithoutEndpoints(t *testing.T) {
	c := newClient(t, `{}`, nil)
	waitFor(t, "resolver built", func() bool { return c.r.CC() != nil })
	c.r.CC().ReportError(fmt.Errorf("registry unreachable"))
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	var err error
	waitFor(t, "resolver error on RPCs", func() bool {
		_, err = c.tc.EmptyCall(ctx, &testpb.Empty{})
		return err != nil && strings.Contains(err.Error(), "registry unreachable")
	})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("RPC error %v, want UNAVAILABLE carrying the resolver error", err)
	}
}
