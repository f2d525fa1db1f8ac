package balancer

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// TestRegression_StuckTrialDoesNotSpin (issue 21 defect a): on an idle
// channel, a half-open trial RPC that hangs past trialTimeout must not make
// the balancer decide and publish pickers in a loop. Nothing changes while
// it hangs, so no picker is due. Before the fix the engine's Next stayed at
// the trial's start + trialTimeout, already past, and the adapter
// republished about every millisecond (422 pickers in 500 ms).
//
// Real clock: the spin was a loop on real timers. The window is counted
// in pickers, not timed: a fixed balancer publishes none in it on a
// machine of any speed.
func TestRegression_StuckTrialDoesNotSpin(t *testing.T) {
	f := startFleet(t, 1)
	be := f[0]
	c := newClient(t, `{"latencyAware":false,"healthProbe":{"enabled":false},"slowStart":{"window":"0s"},
		"panicThresholdPercent":0,"maxEjectionPercent":100,
		"breaker":{"consecutiveFailures":1,"failureRatio":0,"openDuration":"50ms","halfOpenRequests":1,"trialTimeout":"10ms"}}`,
		endpoints(f.Addrs()))
	waitAllServing(t, c, f)
	b := c.balancer(t)

	// Trip the breaker with one failure.
	be.SetFailure(codes.Unavailable)
	waitFor(t, "the breaker open", func() bool {
		call(c, time.Second)
		return breakerStates(b)[be.Addr] == breaker.Open
	})
	be.SetFailure(codes.OK)
	be.SetHung(true)

	// A wait-for-ready RPC goes as the trial when the open period ends,
	// and hangs.
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	hits := be.Hits()
	done := make(chan error, 1)
	go func() {
		_, err := c.tc.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.WaitForReady(true))
		done <- err
	}()
	waitFor(t, "the trial RPC at the backend", func() bool { return be.Hits() > hits })
	if s := breakerStates(b)[be.Addr]; s != breaker.HalfOpen {
		t.Fatalf("breaker %v with the trial in flight, want half-open", s)
	}
	// Well past trialTimeout (10ms); the channel is idle.
	time.Sleep(100 * time.Millisecond)

	before := b.published.Load()
	time.Sleep(500 * time.Millisecond)
	pickers := b.published.Load() - before
	t.Logf("%d decisions published in 500ms with a trial stuck past trialTimeout on an idle channel", pickers)
	if pickers > 2 {
		t.Errorf("%d decisions published in 500ms on an idle channel with a trial stuck past trialTimeout, want at most 2 (nothing changes)", pickers)
	}

	cancel()
	<-done
}
