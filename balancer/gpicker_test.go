package balancer

import (
	"errors"
	"testing"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// TestClassify pins how a finished RPC feeds the breaker and the latency
// estimate, with the default failure codes.
func TestClassify(t *testing.T) {
	mask := failureMask(DefaultConfig().Breaker.FailureCodes)
	deadlineToo := mask | 1<<uint32(codes.DeadlineExceeded)
	ok := picker.Outcome{Verdict: picker.Success, Timing: picker.Timed}
	for _, tc := range []struct {
		name string
		di   grpcbalancer.DoneInfo
		mask uint32
		want picker.Outcome
	}{
		{"success", grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true}, mask, ok},
		{"re-picked, nothing sent", grpcbalancer.DoneInfo{}, mask, picker.Outcome{}},
		{"UNAVAILABLE", grpcbalancer.DoneInfo{Err: status.Error(codes.Unavailable, ""), BytesSent: true, BytesReceived: true}, mask, picker.Outcome{Verdict: picker.Failure}},
		{"INTERNAL", grpcbalancer.DoneInfo{Err: status.Error(codes.Internal, "")}, mask, picker.Outcome{Verdict: picker.Failure}},
		{"DATA_LOSS", grpcbalancer.DoneInfo{Err: status.Error(codes.DataLoss, "")}, mask, picker.Outcome{Verdict: picker.Failure}},
		{"RESOURCE_EXHAUSTED", grpcbalancer.DoneInfo{Err: status.Error(codes.ResourceExhausted, "")}, mask, picker.Outcome{Verdict: picker.Failure}},
		{"CANCELLED: lower bound, no verdict", grpcbalancer.DoneInfo{Err: status.Error(codes.Canceled, "")}, mask, picker.Outcome{Timing: picker.LowerBound}},
		{"DEADLINE_EXCEEDED: lower bound, no verdict", grpcbalancer.DoneInfo{Err: status.Error(codes.DeadlineExceeded, "")}, mask, picker.Outcome{Timing: picker.LowerBound}},
		{"DEADLINE_EXCEEDED configured", grpcbalancer.DoneInfo{Err: status.Error(codes.DeadlineExceeded, "")}, deadlineToo, picker.Outcome{Verdict: picker.Failure, Timing: picker.LowerBound}},
		{"NOT_FOUND: an answer", grpcbalancer.DoneInfo{Err: status.Error(codes.NotFound, "")}, mask, ok},
		{"plain error (UNKNOWN)", grpcbalancer.DoneInfo{Err: errors.New("app")}, mask, ok},
	} {
		if got := classify(tc.di, tc.mask); got != tc.want {
			t.Errorf("%s: classify = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// childPicker is a pick_first picker stand-in: it fails while err is set.
type childPicker struct{ err error }

func (c *childPicker) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	return grpcbalancer.PickResult{}, c.err
}

// TestGRPCPicker_ChildErrorReleasesTrial: when the chosen endpoint's child
// picker fails (its transport is not ready), the pick is undone: the
// request leaves flight and the breaker admission goes back. For a
// half-open breaker that is the trial slot: without the release, no trial
// would ever be admitted again.
func TestGRPCPicker_ChildErrorReleasesTrial(t *testing.T) {
	now := int64(time.Hour)
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures, cfg.FailureRatio = 1, 0
	br := breaker.New(cfg, func() int64 { return now }, nil)
	tk, _ := br.Allow()
	br.Record(tk, false) // open
	now += int64(cfg.OpenDuration)
	ep := picker.NewEndpoint("a", br)
	child := &childPicker{err: grpcbalancer.ErrNoSubConnAvailable}
	gp := newGRPCPicker(picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1}, []picker.Entry{{Endpoint: ep, Weight: 1, Gated: true}}),
		[]grpcbalancer.Picker{child}, nil, failureMask(defaultFailureCodes))
	if _, err := gp.Pick(grpcbalancer.PickInfo{}); !errors.Is(err, grpcbalancer.ErrNoSubConnAvailable) {
		t.Fatalf("Pick with the child not ready: %v, want ErrNoSubConnAvailable", err)
	}
	if n := ep.InFlight(); n != 0 {
		t.Fatalf("%d in flight after a pick the child refused", n)
	}
	if br.State() != breaker.HalfOpen {
		t.Fatalf("breaker %v, want half-open (the trial was admitted)", br.State())
	}
	child.err = nil
	res, err := gp.Pick(grpcbalancer.PickInfo{})
	if err != nil {
		t.Fatalf("second Pick: %v, want the trial slot free again", err)
	}
	res.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
	if n := ep.InFlight(); n != 0 {
		t.Fatalf("%d in flight after Done", n)
	}
}

// okChild always picks.
type okChild struct{}

func (okChild) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	return grpcbalancer.PickResult{}, nil
}

// TestGRPCPicker_NoAllocation: Pick + Done allocate nothing in the steady
// state, with the latency term (pooled Done) and without (cached Done).
func TestGRPCPicker_NoAllocation(t *testing.T) {
	for _, latency := range []bool{false, true} {
		cfg := breaker.DefaultConfig()
		var entries []picker.Entry
		var children []grpcbalancer.Picker
		for range 4 {
			entries = append(entries, picker.Entry{Endpoint: picker.NewEndpoint("x", breaker.New(cfg, nil, nil)), Weight: 1, Gated: true})
			children = append(children, okChild{})
		}
		gp := newGRPCPicker(picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: latency, LatencyDecay: config.Duration(time.Second)}, entries), children, nil, failureMask(defaultFailureCodes))
		pickDone := func() {
			res, err := gp.Pick(grpcbalancer.PickInfo{})
			if err != nil {
				t.Fatal(err)
			}
			res.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
		}
		for range 100 {
			pickDone() // fill the caches and the pool
		}
		if a := testing.AllocsPerRun(1000, pickDone); a != 0 {
			t.Errorf("latencyAware=%v: %v allocations per Pick+Done, want 0", latency, a)
		}
	}
}

// scChild picks a fixed SubConn.
type scChild struct{ sc grpcbalancer.SubConn }

func (c scChild) Pick(grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	return grpcbalancer.PickResult{SubConn: c.sc}, nil
}

// TestGRPCPicker_HandsBackGRPCsSubConn: grpc-go gets back the SubConn it
// created, not Fulcrum's wrapper: from the slot when the child picks the
// READY SubConn known at construction, from the wrapper when it picks
// another one (a late switch of pick_first), and a SubConn that is not a
// wrapper as it is.
func TestGRPCPicker_HandsBackGRPCsSubConn(t *testing.T) {
	inner := [3]*benchSubConn{{}, {}, {}}
	known, other := &subConn{SubConn: inner[0]}, &subConn{SubConn: inner[1]}
	for _, tc := range []struct {
		name  string
		child grpcbalancer.SubConn
		ready *subConn
		want  grpcbalancer.SubConn
	}{
		{"the READY SubConn", known, known, inner[0]},
		{"another wrapper", other, known, inner[1]},
		{"nothing known", other, nil, inner[1]},
		{"not a wrapper", inner[2], known, inner[2]},
	} {
		gp := newGRPCPicker(picker.New(picker.DefaultConfig(), []picker.Entry{{Endpoint: picker.NewEndpoint("a", nil), Weight: 1}}),
			[]grpcbalancer.Picker{scChild{tc.child}}, []*subConn{tc.ready}, failureMask(defaultFailureCodes))
		res, err := gp.Pick(grpcbalancer.PickInfo{})
		if err != nil {
			t.Fatalf("%s: Pick: %v", tc.name, err)
		}
		if res.SubConn != tc.want {
			t.Errorf("%s: Pick returned %p, want grpc-go's %p", tc.name, res.SubConn, tc.want)
		}
		res.Done(okDone)
	}
}
