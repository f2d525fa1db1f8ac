package hedge

import (
	"testing"
	"time"
)

// TestBudget_RatioAndFloor: with 20 % and a floor of 1 retry per
// second (a reserve of 10 over the 10 s TTL), 100 requests allow 10 + 20
// retries; the 31st is refused. Deposits and withdrawals expire after 10 s.
func TestBudget_RatioAndFloor(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBudget(20, 1, func() time.Time { return now })
	for range 100 {
		b.Deposit()
	}
	n := 0
	for b.Withdraw() {
		n++
		if n > 1000 {
			t.Fatal("budget never ran out")
		}
	}
	if n != 30 {
		t.Errorf("retries allowed = %d, want 30 (reserve 10 + 20%% of 100)", n)
	}
	// 11 s later every deposit and withdrawal has expired: the reserve is
	// back in full, nothing of the old deposits.
	now = now.Add(11 * time.Second)
	n = 0
	for b.Withdraw() {
		n++
	}
	if n != 10 {
		t.Errorf("after the TTL, retries allowed = %d, want the reserve of 10", n)
	}
	b.Refund()
	if !b.Withdraw() || b.Withdraw() {
		t.Error("a refund did not give back exactly one token")
	}
}

func TestBudget_ZeroRefusesEverything(t *testing.T) {
	b := NewBudget(0, 0, time.Now)
	for range 50 {
		b.Deposit()
	}
	if b.Withdraw() {
		t.Error("withdraw with a zero budget succeeded")
	}
}
