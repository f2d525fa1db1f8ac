package fulcrumhttp

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// roundTrip sends req to one endpoint of g, and again to another endpoint
// while the attempt failed in a way worth re-sending and the request, its
// context and the host's retry budget allow it. The rules, in README's
// table:
//
//   - an attempt that was never written (no connection, or the connection
//     failed before the request's headers were written) is re-sent
//     whatever the method: the endpoint cannot have processed it (Finagle's
//     requeue, Envoy's connect-failure, gRPC's transparent retry);
//   - one that may have been processed is re-sent only when it is safe to
//     repeat (idempotent) and failed with a connection error, a per-try
//     timeout or a retry.statuses status;
//
// both only with a rewindable body, within retry.maxAttempts, while the
// context is live, to an endpoint not tried yet, and with a token of the
// host's budget. With hedging on, a request safe to repeat goes through
// hedgedRoundTrip instead (hedging.go), whose attempts follow the same
// rules.
func (g *group) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	g.budget.Deposit()
	maxAttempts := g.t.cfg.Retry.MaxAttempts
	ov := overridesOf(ctx)
	if ov.noRetries {
		maxAttempts = 1
	}
	canResend := maxAttempts > 1 && rewindable(req)
	safe := canResend && (ov.idempotent || idempotent(req))
	if g.hedger != nil && !ov.noRetries && rewindable(req) && (ov.idempotent || idempotent(req)) {
		return g.hedgedRoundTrip(req)
	}

	a, err := g.pick(ctx, nil)
	if err != nil {
		closeReqBody(req)
		return nil, &Error{Host: g.route.key, Err: err}
	}
	out := req
	var tried []*picker.Endpoint
	for n := 1; ; n++ {
		r := g.send(ctx, a, out)
		var next *attempt
		if n < maxAttempts && ctx.Err() == nil && g.resend(r, canResend, safe) {
			tried = append(tried, a.hot())
			next = g.nextAttempt(ctx, tried)
		}
		if next == nil {
			// This attempt's result is the request's.
			if r.err != nil {
				r.end(a)
				return nil, &Error{Host: g.route.key, Endpoint: a.ep.addr(), Attempts: n, Err: r.err}
			}
			g.track(ctx, out, r, a)
			return r.resp, nil
		}
		if r.resp != nil {
			r.discard()
		}
		r.end(a)
		if out, err = rewind(ctx, req); err != nil {
			next.abort()
			return nil, &Error{Host: g.route.key, Endpoint: a.ep.addr(), Attempts: n, Err: fmt.Errorf("rewinding the body for a retry: %w", err)}
		}
		g.t.retries.Add(1)
		g.obs.Metrics().Retried()
		a = next
	}
}

// resend reports whether attempt r may be sent again elsewhere (the
// request-level conditions aside).
func (g *group) resend(r *result, canResend, safe bool) bool {
	switch {
	case r.err != nil && !r.written:
		return canResend // never written: any method
	case r.err != nil:
		return safe && r.o.Verdict == picker.Failure
	default:
		return safe && slices.Contains(g.t.cfg.Retry.Statuses, r.resp.StatusCode)
	}
}

// nextAttempt picks an endpoint not tried yet for a retry and takes the
// retry from the host's budget, or returns nil if either is not available.
func (g *group) nextAttempt(ctx context.Context, tried []*picker.Endpoint) *attempt {
	next, err := g.pick(ctx, tried)
	if err != nil {
		return nil // nowhere else to go: the failed attempt stands
	}
	if !g.budget.Withdraw() {
		g.t.retriesDenied.Add(1)
		g.obs.Metrics().RetryRejected()
		next.abort()
		return nil
	}
	return next
}

// retryAfterHint holds ep for the Retry-After of a response whose status is
// in breaker.retryAfterStatuses (503 by default), capped at
// breaker.maxRetryAfter. A hold only makes selection prefer other
// endpoints (selection.pick): it never leaves a host without one.
func (g *group) retryAfterHint(ep *endpoint, resp *http.Response) {
	limit := time.Duration(g.t.cfg.Breaker.MaxRetryAfter)
	if limit <= 0 || !slices.Contains(g.t.cfg.Breaker.RetryAfterStatuses, resp.StatusCode) {
		return
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), g.t.clk.Now()); ok {
		if ep.rt.hold(min(d, limit)) {
			logger.Infof("host %q: endpoint %s: %d with Retry-After %v: other endpoints preferred until then", g.route.key, ep.addr(), resp.StatusCode, min(d, limit))
		}
	}
}
