package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error is the error of every request to a mapped host that gets no
// response: which host, which endpoint the last attempt went to, how many
// attempts were sent, and why the last one failed (Err). http.Client wraps
// it in a *url.Error, as it does net/http's own errors.
//
// It answers the usual idioms as net/http's errors do: errors.Is(err,
// context.DeadlineExceeded), errors.Is(err, ErrNoUsableEndpoint) and
// errors.As(err, &netErr) look through it (Unwrap), and Timeout and
// Temporary report those of Err, so that err.(net.Error).Timeout() behind
// http.Client is true when the request's deadline passed or an attempt
// timed out.
type Error struct {
	Host     string // the map key the request matched
	Endpoint string // the address of the endpoint of the last attempt; "" if none was sent
	Attempts int    // attempts sent, the last included
	Err      error
}

func (e *Error) Error() string {
	if e.Endpoint != "" {
		return fmt.Sprintf("fulcrumhttp: host %q: endpoint %s (attempt %d): %v", e.Host, e.Endpoint, e.Attempts, e.Err)
	}
	if s := e.Err.Error(); strings.HasPrefix(s, "fulcrumhttp: host ") {
		return s // picking's errors name the host and its target
	}
	return fmt.Sprintf("fulcrumhttp: host %q: %v", e.Host, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the request failed because a deadline passed:
// its context's, an attempt's (retry.perTryTimeout), or one of net/http's
// own timeouts.
func (e *Error) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &t) && t.Timeout()
}

// Temporary reports what net/http's errors report: true for a timeout
// (context.DeadlineExceeded says so) or an error that says it is
// temporary.
func (e *Error) Temporary() bool {
	var t interface{ Temporary() bool }
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &t) && t.Temporary()
}

// attemptTimeout is the cause of an attempt cancelled by
// retry.perTryTimeout: the endpoint was too slow, a failure to retry
// elsewhere, while the request's own context is still live.
type attemptTimeout struct{ d time.Duration }

func (e *attemptTimeout) Error() string {
	return fmt.Sprintf("attempt timed out after retry.perTryTimeout %v", e.d)
}
func (e *attemptTimeout) Timeout() bool   { return true }
func (e *attemptTimeout) Temporary() bool { return true }

// errDrainSlow cancels a retried response whose body was not ready to be
// drained at once: closing its connection is cheaper than waiting.
var errDrainSlow = errors.New("fulcrumhttp: retried response's body not ready; closed instead of drained")

// overrides are the per-request settings of DisableRetries and
// MarkIdempotent.
type overrides struct{ noRetries, idempotent bool }

type overridesKey struct{}

func overridesOf(ctx context.Context) overrides {
	o, _ := ctx.Value(overridesKey{}).(overrides)
	return o
}

// DisableRetries returns a context whose requests are sent once: to one
// endpoint, never again, not even when the attempt was never written.
// Use it with http.NewRequestWithContext.
func DisableRetries(ctx context.Context) context.Context {
	o := overridesOf(ctx)
	o.noRetries = true
	return context.WithValue(ctx, overridesKey{}, o)
}

// MarkIdempotent returns a context whose requests are safe to repeat
// whatever their method, as an Idempotency-Key header would make them,
// without sending a header. Their body must still be rewindable (GetBody).
func MarkIdempotent(ctx context.Context) context.Context {
	o := overridesOf(ctx)
	o.idempotent = true
	return context.WithValue(ctx, overridesKey{}, o)
}
