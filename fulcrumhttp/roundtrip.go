package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// maxDrain is how much of a retried response's body is read so that its
// connection can be reused.
const maxDrain = 16 << 10

// roundTrip sends req to one endpoint of g, and again to another endpoint
// while the attempt failed in a way worth retrying and the request, its
// context and the retry budget allow it.
func (g *group) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	cfg := g.t.cfg
	g.t.budget.deposit()
	canRepeat := cfg.Retry.MaxAttempts > 1 && retryable(req)

	ep, done, err := g.pick(ctx, nil)
	if err != nil {
		closeReqBody(req)
		return nil, err
	}
	out := req
	for attempt := 1; ; attempt++ {
		ep.requests.Add(1)
		resp, err := ep.rt.RoundTrip(out)
		var o outcome
		if err != nil {
			o = classifyErr(ctx, err)
		} else {
			o = classifyStatus(resp.StatusCode, cfg.FailureStatuses)
			g.retryAfterHint(ep, resp)
		}
		retry := canRepeat && attempt < cfg.Retry.MaxAttempts && ctx.Err() == nil &&
			(err != nil && o == failure || err == nil && slices.Contains(cfg.Retry.Statuses, resp.StatusCode))
		var next *endpoint
		var nextDone func(outcome)
		if retry {
			next, nextDone = g.nextAttempt(ctx, ep)
		}
		if next == nil {
			// This attempt's result is the request's.
			if err != nil {
				g.finish(ep, done, o)
				return nil, fmt.Errorf("fulcrumhttp: host %q: endpoint %s: %w", g.route.key, ep.addr(), err)
			}
			g.track(ctx, resp, ep, done, o)
			return resp, nil
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
			resp.Body.Close()
		}
		g.finish(ep, done, o)
		if out, err = rewind(ctx, req); err != nil {
			g.finish(next, nextDone, neutral)
			return nil, fmt.Errorf("fulcrumhttp: host %q: rewinding the body for a retry: %w", g.route.key, err)
		}
		g.t.retries.Add(1)
		ep, done = next, nextDone
	}
}

// nextAttempt picks another endpoint for a retry and takes the retry from
// the budget, or returns nil if either is not available.
func (g *group) nextAttempt(ctx context.Context, prev *endpoint) (*endpoint, func(outcome)) {
	next, done, err := g.pick(ctx, prev)
	if err != nil {
		return nil, nil // nowhere else to go: the failed attempt stands
	}
	if !g.t.budget.withdraw() {
		g.t.retriesDenied.Add(1)
		done(neutral)
		return nil, nil
	}
	return next, done
}

// finish reports an attempt's outcome to selection once.
func (g *group) finish(ep *endpoint, done func(outcome), o outcome) {
	if o == failure {
		ep.failures.Add(1)
	}
	done(o)
}

// track keeps the request in flight until the response body is read to
// EOF, fails or is closed. A body that breaks off (the instance died
// mid-stream) is a failure unless the caller's context ended.
func (g *group) track(ctx context.Context, resp *http.Response, ep *endpoint, done func(outcome), o outcome) {
	if resp.Body == nil || resp.Body == http.NoBody {
		g.finish(ep, done, o)
		return
	}
	resp.Body = wrapBody(resp.Body, func(err error) {
		if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			o = failure
		}
		g.finish(ep, done, o)
	})
}

// retryAfterHint holds ep out of rotation for the Retry-After of a 503 or
// 429, capped at breaker.maxRetryAfter.
func (g *group) retryAfterHint(ep *endpoint, resp *http.Response) {
	limit := g.t.cfg.MaxRetryAfter
	if limit <= 0 || resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), g.t.now()); ok {
		g.hold(ep, min(d, limit))
	}
}
