package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// maxDrain is the largest retried response body that is read so that its
// connection can be reused; a larger one, or one of unknown length, is
// closed at once.
const maxDrain = 16 << 10

// drainWait bounds the drain of a retried response: a body that is not
// there this soon (its server sent the headers and stalled) is closed
// instead, so a stalled endpoint costs the request nothing but a
// connection.
const drainWait = 10 * time.Millisecond

// result is one attempt's outcome.
type result struct {
	resp    *http.Response
	err     error
	o       picker.Outcome
	written bool // the request's headers were written to a connection
	// cancel ends the attempt's context, a child of the request's: for
	// the final response when its body ends, otherwise when the attempt
	// ends.
	cancel context.CancelCauseFunc
	timer  *time.Timer // retry.perTryTimeout; nil when off
}

// send makes one attempt on a.ep and classifies it. An attempt that had to
// dial a new connection is not timed: its duration is mostly the dial, not
// the endpoint's serving time. An attempt is written once net/http has
// written its headers (httptrace WroteHeaders, called after the whole
// header block went to the connection's buffer): before that, whatever
// failed, the server cannot have received a complete request.
func (g *group) send(ctx context.Context, a *attempt, req *http.Request) *result {
	a.ep.requests.Add(1)
	actx, cancel := context.WithCancelCause(ctx)
	r := &result{cancel: cancel}
	var written, dialled atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if !info.Reused {
				dialled.Store(true)
			}
		},
		WroteHeaders: func() { written.Store(true) },
	}
	if d := time.Duration(g.t.cfg.Retry.PerTryTimeout); d > 0 {
		r.timer = time.AfterFunc(d, func() { cancel(&attemptTimeout{d}) })
	}
	resp, err := a.ep.rt.rt.RoundTrip(req.WithContext(httptrace.WithClientTrace(actx, trace)))
	r.written = written.Load()
	switch to, timedOut := context.Cause(actx).(*attemptTimeout); {
	case err != nil && timedOut && ctx.Err() == nil:
		// The endpoint did not answer within retry.perTryTimeout: its
		// failure, and it took at least that long.
		if !errors.Is(err, to) {
			err = fmt.Errorf("%w (%v)", to, err)
		}
		r.err, r.o = err, picker.Outcome{Verdict: picker.Failure, Timing: picker.LowerBound}
	case err != nil:
		r.err, r.o = err, classifyErr(ctx, err)
	default:
		r.resp, r.o = resp, classifyStatus(resp.StatusCode, g.t.cfg.Breaker.FailureStatuses)
		g.retryAfterHint(a.ep, resp)
	}
	if dialled.Load() && r.o.Timing == picker.Timed {
		r.o.Timing = picker.Untimed
	}
	return r
}

// end ends an attempt whose response (if any) is not the caller's.
func (r *result) end(a *attempt) {
	if r.timer != nil {
		r.timer.Stop()
	}
	a.finish(r.o)
	r.cancel(nil)
}

// discard ends a retried response: its body is drained so that its
// connection can be reused when it is small, of known length and there at
// once (within drainWait and the per-try timeout), and closed otherwise.
func (r *result) discard() {
	body := r.resp.Body
	if n := r.resp.ContentLength; n > 0 && n <= maxDrain {
		t := time.AfterFunc(drainWait, func() { r.cancel(errDrainSlow) })
		io.Copy(io.Discard, io.LimitReader(body, maxDrain))
		t.Stop()
	}
	body.Close()
}

// track keeps the attempt in flight until the response body is read to
// EOF, fails or is closed. A body that breaks off (the instance died
// mid-stream) is a failure unless the caller's context ended, which makes
// the duration a lower bound. retry.perTryTimeout bounded the attempt
// until its headers; the body is the caller's, under its context (if the
// per-try timer fired between the headers and this Stop, the body fails
// with the per-try timeout: a failure of the endpoint, as it is).
func (g *group) track(ctx context.Context, req *http.Request, r *result, a *attempt) {
	if r.timer != nil {
		r.timer.Stop()
	}
	resp, o := r.resp, r.o
	if noBody(req, resp) {
		a.finish(o)
		r.cancel(nil)
		return
	}
	body := resp.Body
	resp.Body = wrapBody(body, func(err error) {
		switch {
		case err == nil:
		case ctx.Err() != nil || errors.Is(err, context.Canceled):
			o = cutShort
		default:
			o = failed
		}
		if a.ep.rt.gone.Load() {
			// Ends the HTTP/2 stream now (a body read to EOF ends it
			// asynchronously), so that finish can close the connection.
			body.Close()
		}
		a.finish(o)
		r.cancel(nil)
	})
}

// noBody reports whether resp has no body to wait for: net/http's
// http.NoBody, and the responses HTTP/2 gives a body of its own that
// never ends by itself (HEAD, Content-Length 0, 204, 304). A 101's body is
// the switched connection: in flight while open.
func noBody(req *http.Request, resp *http.Response) bool {
	switch {
	case resp.Body == nil || resp.Body == http.NoBody:
		return true
	case resp.StatusCode == http.StatusSwitchingProtocols:
		return false
	}
	return req.Method == http.MethodHead || resp.ContentLength == 0 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
}
