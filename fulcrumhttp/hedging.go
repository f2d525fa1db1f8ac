package fulcrumhttp

import (
	"context"
	"net/http"

	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// hedged is one attempt of a hedged request.
type hedged struct {
	n   int
	a   *attempt // nil when no endpoint could be picked
	r   *result
	out *http.Request
	err error // pick or rewind error
}

// hedgedRoundTrip sends a request that is safe to repeat with hedging
// (package hedge runs the attempts): after the host's hedging delay, a
// copy goes to an endpoint no other attempt of the request went to, and
// the first response that is not worth re-sending wins. An attempt
// that failed in a way a retry would re-send (a connection error, a
// retry.statuses status) does not end the request: the next attempt goes
// at once (gRFC A6's non-fatal codes). Hedges take a token of the host's
// hedging budget and of its retry budget. A losing attempt's context is
// cancelled, and its response, if it has one, drained or closed.
func (g *group) hedgedRoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	try := func(actx context.Context, n int) *hedged {
		h := &hedged{n: n}
		// The call's state (hedge.Call) says where its other attempts went,
		// as it does for the gRPC balancer.
		at, _ := hedge.AttemptFrom(actx)
		var buf [hedge.MaxAttempts]*picker.Endpoint
		if h.a, h.err = g.pick(actx, at.Call.Except(n, buf[:0])); h.err != nil {
			if n > 0 {
				at.Call.Refuse(n)
			}
			return h
		}
		h.out = req
		if n > 0 {
			if h.out, h.err = rewind(actx, req); h.err != nil {
				h.a.abort()
				h.a = nil
				return h
			}
		}
		at.Call.Sent(n, h.a.hot())
		h.r = g.send(actx, h.a, h.out)
		return h
	}
	judge := func(h *hedged) hedge.Judgement {
		if h.r == nil {
			return hedge.Judgement{Final: h.n == 0}
		}
		return hedge.Judgement{
			Final: !g.resend(h.r, true, true),
			Timed: h.r.resp != nil && h.r.o.Verdict != picker.Failure,
		}
	}
	discard := func(h *hedged) {
		if h.r == nil {
			return
		}
		if h.r.resp != nil {
			h.r.discard()
		}
		h.r.end(h.a)
	}
	h, release := hedge.Do(ctx, g.hedger, try, judge, discard)
	if h.r == nil {
		release()
		closeReqBody(req)
		return nil, &Error{Host: g.route.key, Attempts: h.n + 1, Err: h.err}
	}
	if h.r.err != nil {
		h.r.end(h.a)
		release()
		return nil, &Error{Host: g.route.key, Endpoint: h.a.ep.addr(), Attempts: h.n + 1, Err: h.r.err}
	}
	// The winner's context lives until its body ends.
	cancel := h.r.cancel
	h.r.cancel = func(cause error) { cancel(cause); release() }
	g.track(ctx, h.out, h.r, h.a)
	return h.r.resp, nil
}
