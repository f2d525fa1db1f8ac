package balancer

import (
	"errors"
	"fmt"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// pickAttempt picks for one attempt of a hedged call (fulcrum.WithHedging):
// never an endpoint another attempt of the call went to (in flight, or
// failed with a non-fatal status), recorded
// in the call's state for the next attempt, and a Done that does not count
// an attempt cancelled because another won against its endpoint.
//
// A hedge with nowhere else to go fails at once with UNAVAILABLE (a status
// error ends the attempt without waiting, even wait-for-ready): the
// interceptor sees the refusal in the call's state and waits for the
// attempts already in flight.
func (gp *grpcPicker) pickAttempt(info grpcbalancer.PickInfo, a hedge.Attempt) (grpcbalancer.PickResult, error) {
	if h := a.Call.Hedger(); h != nil && gp.onHedged != nil {
		gp.onHedged(h)
	}
	bounded := false
	if gp.p.LatencyAware() {
		_, bounded = info.Ctx.Deadline()
	}
	var buf [hedge.MaxAttempts]*picker.Endpoint
	i, tok, err := gp.p.SelectExcept(bounded, a.Call.Except(a.N, buf[:0]))
	if errors.Is(err, picker.ErrNoOtherEndpoint) {
		if a.N > 0 {
			a.Call.Refuse(a.N)
			return grpcbalancer.PickResult{}, status.Errorf(codes.Unavailable, "%s: hedge not sent: %v", Name, err)
		}
		// The first attempt re-picked (grpc-go's transparent retry) while a
		// hedge holds the only other endpoint: it may go anywhere.
		i, tok, err = gp.p.SelectBounded(bounded)
	}
	if err != nil {
		if gp.onRejected != nil {
			gp.onRejected()
		}
		return grpcbalancer.PickResult{}, fmt.Errorf("%s: %w", Name, err)
	}
	res, err := gp.children[i].Pick(info)
	if err != nil {
		gp.p.Abort(i, tok)
		return res, err
	}
	if sc, ok := res.SubConn.(*subConn); ok {
		res.SubConn = sc.SubConn
	}
	a.Call.Sent(a.N, gp.p.Entry(i).Endpoint)
	child := res.Done
	res.Done = func(di grpcbalancer.DoneInfo) {
		o := classify(di, gp.mask)
		if a.Call.Ended(a.N) {
			// Cancelled because another attempt won: not the endpoint's
			// failure, and its duration only a lower bound of its latency
			// (it may raise the estimate, never lower it).
			o = picker.Outcome{Timing: picker.LowerBound}
		}
		gp.p.Finish(i, tok, o)
		if child != nil {
			child(di)
		}
	}
	return res, nil
}
