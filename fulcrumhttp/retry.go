package fulcrumhttp

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
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

// retryBudget limits retries to a share of recent requests plus a floor
// per second, so that retries cannot multiply the load of an outage
// (Finagle's RetryBudget: "a percentage of requests ... plus a minimum
// number of retries per second", tokens expiring after a TTL of 10s).
//
// Every request deposits ratio tokens, every retry withdraws one; both
// expire after ttl, kept in one-second buckets. The balance also holds a
// reserve of minPerSecond x ttl tokens that never expires.
type retryBudget struct {
	// Read-only after construction. Tokens are counted in thousandths,
	// as Finagle does, so that 5 deposits of 20 % make exactly one retry.
	deposit1000 int64
	reserve1000 int64
	now         func() time.Time

	mu      sync.Mutex
	buckets [budgetBuckets]int64 // net thousandths of tokens per second of the window
	head    int64                // unix second of the newest bucket
}

const budgetBuckets = 10 // TTL of deposits and withdrawals, in seconds

func newRetryBudget(percent, minPerSecond float64, now func() time.Time) *retryBudget {
	return &retryBudget{
		deposit1000: int64(math.Round(percent * 10)),
		reserve1000: int64(math.Round(minPerSecond * budgetBuckets * 1000)),
		now:         now,
	}
}

// advance moves the window to the current second. Caller must hold b.mu.
func (b *retryBudget) advanceLocked() int {
	sec := b.now().Unix()
	if gap := sec - b.head; gap > 0 {
		for i := int64(1); i <= min(gap, budgetBuckets); i++ {
			b.buckets[(b.head+i)%budgetBuckets] = 0
		}
		b.head = sec
	}
	return int(((b.head % budgetBuckets) + budgetBuckets) % budgetBuckets)
}

// deposit records one request.
func (b *retryBudget) deposit() {
	b.mu.Lock()
	b.buckets[b.advanceLocked()] += b.deposit1000
	b.mu.Unlock()
}

// withdraw takes one retry from the budget, or reports false.
func (b *retryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.advanceLocked()
	balance := b.reserve1000
	for _, v := range b.buckets {
		balance += v
	}
	if balance < 1000 {
		return false
	}
	b.buckets[i] -= 1000
	return true
}
