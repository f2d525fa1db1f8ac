package balancer

import (
	"context"
	"testing"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// TestGRPCPicker_HedgeLoserIsNotAFailure: with CANCELLED configured as a
// failure code and a breaker that trips on one failure, an attempt that
// ends CANCELLED because another attempt of its call won leaves its
// endpoint's breaker closed, while the same end of an ordinary attempt
// trips it. The hedge of a call skips the endpoint its first attempt is in
// flight on, and with nowhere else to go is refused with UNAVAILABLE.
func TestGRPCPicker_HedgeLoserIsNotAFailure(t *testing.T) {
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures, cfg.FailureRatio = 1, 0
	mask := failureMask(append(defaultFailureCodes[:len(defaultFailureCodes):len(defaultFailureCodes)], "CANCELLED"))
	newPicker := func(n int) (*grpcPicker, []*picker.Endpoint) {
		var eps []*picker.Endpoint
		var entries []picker.Entry
		var children []grpcbalancer.Picker
		for i := range n {
			ep := picker.NewEndpoint(string(rune('a'+i)), breaker.New(cfg, nil, nil))
			eps = append(eps, ep)
			entries = append(entries, picker.Entry{Endpoint: ep, Weight: 1, Gated: true})
			children = append(children, &childPicker{})
		}
		return newGRPCPicker(picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1}, entries), children, nil, mask), eps
	}
	cancelled := grpcbalancer.DoneInfo{Err: status.Error(codes.Canceled, "context canceled"), BytesSent: true}
	gp, eps := newPicker(2)

	call := new(hedge.Call)
	first, err := gp.Pick(grpcbalancer.PickInfo{Ctx: hedge.WithAttempt(context.Background(), call, 0)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := gp.Pick(grpcbalancer.PickInfo{Ctx: hedge.WithAttempt(context.Background(), call, 1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.InFlight() != 1 {
			t.Fatalf("in flight %d on %s: the hedge went where the first attempt is", ep.InFlight(), ep.Addr())
		}
	}
	call.Cancel(0) // the hedge won
	first.Done(cancelled)
	second.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
	for _, ep := range eps {
		if st := ep.Breaker().State(); st != breaker.Closed {
			t.Fatalf("%s: breaker %v after a hedged call, want closed", ep.Addr(), st)
		}
	}

	// The control: an ordinary attempt ending CANCELLED is a failure here.
	res, err := gp.Pick(grpcbalancer.PickInfo{Ctx: context.Background()})
	if err != nil {
		t.Fatal(err)
	}
	res.Done(cancelled)
	open := 0
	for _, ep := range eps {
		if ep.Breaker().State() == breaker.Open {
			open++
		}
	}
	if open != 1 {
		t.Fatalf("%d breakers open after an ordinary CANCELLED attempt, want 1", open)
	}

	// One endpoint: the hedge has nowhere to go.
	gp1, _ := newPicker(1)
	call = new(hedge.Call)
	res, err = gp1.Pick(grpcbalancer.PickInfo{Ctx: hedge.WithAttempt(context.Background(), call, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gp1.Pick(grpcbalancer.PickInfo{Ctx: hedge.WithAttempt(context.Background(), call, 1)}); status.Code(err) != codes.Unavailable {
		t.Fatalf("hedge with one endpoint: %v, want UNAVAILABLE", err)
	}
	res.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
}
