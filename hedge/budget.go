package hedge

import (
	"math"
	"sync"
	"time"
)

// Budget limits extra attempts (retries, hedges) to a share of recent
// requests plus a floor per second, so that they cannot multiply the load
// of an outage or an overload (Finagle's RetryBudget: "a percentage of
// requests ... plus a minimum number of retries per second", tokens
// expiring after a TTL of 10s).
//
// Every request deposits percent/100 tokens, every extra attempt withdraws
// one; both expire after the TTL, kept in one-second buckets. The balance
// also holds a reserve of minPerSecond x TTL tokens that never expires. So
// over any 10 seconds, extra attempts are at most percent % of the
// requests plus minPerSecond x 10.
type Budget struct {
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

// NewBudget returns a budget of percent % of requests plus minPerSecond
// per second, read on now (nil: time.Now).
func NewBudget(percent, minPerSecond float64, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{
		deposit1000: int64(math.Round(percent * 10)),
		reserve1000: int64(math.Round(minPerSecond * budgetBuckets * 1000)),
		now:         now,
	}
}

// advanceLocked moves the window to the current second and returns the
// index of its bucket. Caller must hold b.mu.
func (b *Budget) advanceLocked() int {
	sec := b.now().Unix()
	if gap := sec - b.head; gap > 0 {
		for i := int64(1); i <= min(gap, budgetBuckets); i++ {
			b.buckets[(b.head+i)%budgetBuckets] = 0
		}
		b.head = sec
	}
	return int(((b.head % budgetBuckets) + budgetBuckets) % budgetBuckets)
}

// Deposit records one request.
func (b *Budget) Deposit() {
	b.mu.Lock()
	b.buckets[b.advanceLocked()] += b.deposit1000
	b.mu.Unlock()
}

// Withdraw takes one extra attempt from the budget, or reports false.
func (b *Budget) Withdraw() bool {
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

// Refund returns a token taken by Withdraw for an attempt that was not
// sent after all.
func (b *Budget) Refund() {
	b.mu.Lock()
	b.buckets[b.advanceLocked()] += 1000
	b.mu.Unlock()
}
