package balancer

import (
	"errors"

	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// selectAttempt selects for one attempt of a hedged call
// (fulcrum.WithHedging): never an endpoint another attempt of the call
// went to (in flight, or failed with a non-fatal status). Pick records the
// endpoint in the call's state for the next attempt, and its Done does not
// count an attempt cancelled because another won against its endpoint.
//
// A hedge with nowhere else to go is refused (recorded in the call's
// state, so that the interceptor waits for the attempts in flight) and the
// error wraps picker.ErrNoOtherEndpoint.
func (gp *grpcPicker) selectAttempt(bounded bool, a hedge.Attempt) (int, picker.Token, error) {
	if h := a.Call.Hedger(); h != nil && gp.onHedged != nil {
		gp.onHedged(h)
	}
	var buf [hedge.MaxAttempts]*picker.Endpoint
	i, tok, err := gp.p.SelectExcept(bounded, a.Call.Except(a.N, buf[:0]))
	if !errors.Is(err, picker.ErrNoOtherEndpoint) {
		return i, tok, err
	}
	if a.N > 0 {
		a.Call.Refuse(a.N)
		return i, tok, err
	}
	// The first attempt re-picked (grpc-go's transparent retry) while a
	// hedge holds the only other endpoint: it may go anywhere.
	return gp.p.SelectBounded(bounded)
}
