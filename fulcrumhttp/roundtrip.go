package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
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

	a, err := g.pick(ctx, nil)
	if err != nil {
		closeReqBody(req)
		return nil, err
	}
	out := req
	var tried []*endpoint
	for n := 1; ; n++ {
		resp, o, err := g.send(ctx, a, out)
		retry := canRepeat && n < cfg.Retry.MaxAttempts && ctx.Err() == nil &&
			(err != nil && o.Verdict == picker.Failure || err == nil && slices.Contains(cfg.Retry.Statuses, resp.StatusCode))
		var next *attempt
		if retry {
			tried = append(tried, a.ep)
			next = g.nextAttempt(ctx, tried)
		}
		if next == nil {
			// This attempt's result is the request's.
			if err != nil {
				a.finish(o)
				return nil, fmt.Errorf("fulcrumhttp: host %q: endpoint %s: %w", g.route.key, a.ep.addr(), err)
			}
			g.track(ctx, resp, a, o)
			return resp, nil
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
			resp.Body.Close()
		}
		a.finish(o)
		if out, err = rewind(ctx, req); err != nil {
			next.abort()
			return nil, fmt.Errorf("fulcrumhttp: host %q: rewinding the body for a retry: %w", g.route.key, err)
		}
		g.t.retries.Add(1)
		g.obs.Metrics().Retried()
		a = next
	}
}

// send makes one attempt on a.ep and classifies it. An attempt that had to
// dial a new connection is not timed when the latency term is on: its
// duration is mostly the dial, not the endpoint's serving time.
func (g *group) send(ctx context.Context, a *attempt, req *http.Request) (*http.Response, picker.Outcome, error) {
	a.ep.requests.Add(1)
	var dialled *atomic.Bool
	if g.pcfg.LatencyAware {
		dialled = new(atomic.Bool)
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				dialled.Store(true)
			}
		}}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	}
	resp, err := a.ep.rt.RoundTrip(req)
	var o picker.Outcome
	if err != nil {
		o = classifyErr(ctx, err)
	} else {
		o = classifyStatus(resp.StatusCode, g.t.cfg.Breaker.FailureStatuses)
		g.retryAfterHint(a.ep, resp)
	}
	if dialled != nil && dialled.Load() && o.Timing == picker.Timed {
		o.Timing = picker.Untimed
	}
	return resp, o, err
}

// nextAttempt picks an endpoint not tried yet for a retry and takes the
// retry from the budget, or returns nil if either is not available.
func (g *group) nextAttempt(ctx context.Context, tried []*endpoint) *attempt {
	next, err := g.pick(ctx, tried)
	if err != nil {
		return nil // nowhere else to go: the failed attempt stands
	}
	if !g.t.budget.withdraw() {
		g.t.retriesDenied.Add(1)
		g.obs.Metrics().RetryRejected()
		next.abort()
		return nil
	}
	return next
}

// track keeps the attempt in flight until the response body is read to
// EOF, fails or is closed. A body that breaks off (the instance died
// mid-stream) is a failure unless the caller's context ended, which makes
// the duration a lower bound.
func (g *group) track(ctx context.Context, resp *http.Response, a *attempt, o picker.Outcome) {
	if resp.Body == nil || resp.Body == http.NoBody {
		a.finish(o)
		return
	}
	resp.Body = wrapBody(resp.Body, func(err error) {
		switch {
		case err == nil:
		case ctx.Err() != nil || errors.Is(err, context.Canceled):
			o = cutShort
		default:
			o = failed
		}
		a.finish(o)
	})
}

// retryAfterHint holds ep out of rotation for the Retry-After of a 503 or
// 429, capped at breaker.maxRetryAfter.
func (g *group) retryAfterHint(ep *endpoint, resp *http.Response) {
	limit := time.Duration(g.t.cfg.Breaker.MaxRetryAfter)
	if limit <= 0 || resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
		return
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), g.t.clk.Now()); ok {
		g.hold(ep, min(d, limit))
	}
}
