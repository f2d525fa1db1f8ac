package fulcrumhttp

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// retryable reports whether req may be sent again after it may have been
// processed: a body that can be rewound and an idempotent request.
func retryable(req *http.Request) bool { return rewindable(req) && idempotent(req) }

// rewindable reports whether req's body can be sent again: none, or
// GetBody set (http.NewRequest sets it for bytes and strings readers).
func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// idempotent reports whether req is safe to repeat: an idempotent method
// (RFC 9110 section 9.2.2), or an Idempotency-Key or X-Idempotency-Key
// header, present even with a nil value, which net/http does not send
// (net/http's own rule for replaying a request, Request.isReplayable).
// POST and PATCH without one are not.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, k := req.Header["Idempotency-Key"]
	_, x := req.Header["X-Idempotency-Key"]
	return k || x
}

// rewind returns a copy of req for another attempt, with a fresh body.
func rewind(ctx context.Context, req *http.Request) (*http.Request, error) {
	out := req.Clone(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		b, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		out.Body = b
	}
	return out, nil
}

// retryAfter parses a Retry-After header value (RFC 9110 section 10.2.3):
// delay-seconds or an HTTP-date. ok is false when v is absent or malformed,
// or names a time already past.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, false
}
