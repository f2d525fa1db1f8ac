package hedge

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// Observer receives a channel's or host's hedging events (its metrics).
// Implementations must not block.
type Observer interface {
	// HedgeSent: an attempt after the first was sent.
	HedgeSent()
	// HedgeWon: such an attempt's result was the call's.
	HedgeWon()
	// HedgeRefused: a hedge was due but the budget refused it.
	HedgeRefused()
}

// Hedger hedges the calls of one channel (gRPC) or host (HTTP): it holds
// the policy, the budget and the delay. Safe for concurrent use; it runs no
// goroutine of its own (each call's attempts end with the call's context).
type Hedger struct {
	// Read-only after New.
	policy Policy
	budget *Budget
	shared *Budget // also charged for each hedge (HTTP: the host's retry budget); may be nil
	delay  *Delayer
	clk    clock.Clock

	obs atomic.Pointer[observerBox]
}

type observerBox struct{ Observer }

// Options are a Hedger's optional parts.
type Options struct {
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Shared is a budget each hedge also needs a token of (the HTTP
	// host's retry budget): retries and hedges together stay within it.
	// The caller deposits its requests into it.
	Shared *Budget
}

// New returns the hedger of p (zero fields take their defaults; p must be
// valid).
func New(p Policy, o Options) *Hedger {
	p = p.WithDefaults()
	clk := clock.OrReal(o.Clock)
	return &Hedger{
		policy: p,
		budget: NewBudget(p.MaxExtraLoadPercent, p.MinHedgesPerSecond, clk.Now),
		shared: o.Shared,
		delay:  NewDelayer(p, clk.Now),
		clk:    clk,
	}
}

// Policy returns the policy in force, defaults filled in.
func (h *Hedger) Policy() Policy { return h.policy }

// Delay returns the current delay and whether it is known (an adaptive
// delay needs samples first), for operators (fulcrumz).
func (h *Hedger) Delay() (d time.Duration, adaptive, known bool) {
	d, known = h.delay.Delay()
	return d, h.delay.Adaptive(), known
}

// SetObserver directs the hedging events to o (the adapter's metrics); a
// balancer that is replaced sets its own.
func (h *Hedger) SetObserver(o Observer) {
	if b := h.obs.Load(); b == nil || b.Observer != o {
		h.obs.Store(&observerBox{o})
	}
}

func (h *Hedger) observer() Observer {
	if b := h.obs.Load(); b != nil {
		return b.Observer
	}
	return nopObserver{}
}

type nopObserver struct{}

func (nopObserver) HedgeSent()    {}
func (nopObserver) HedgeWon()     {}
func (nopObserver) HedgeRefused() {}

// next returns the delay before the next attempt of a call whose context
// is ctx, and false when none may be sent: the delay is not known yet, or
// the call would have less than max(minDelay, median latency) left before
// its deadline when the attempt goes (a hedge with less time than a
// typical call needs would rarely win, and costs a request).
func (h *Hedger) next(ctx context.Context, d time.Duration) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok {
		need := max(time.Duration(h.policy.MinDelay), h.delay.Median())
		if time.Until(dl)-d < need {
			return 0, false
		}
	}
	return d, true
}

// take withdraws a hedge from the budget (and the shared one).
func (h *Hedger) take() bool {
	if !h.budget.Withdraw() {
		return false
	}
	if h.shared != nil && !h.shared.Withdraw() {
		h.budget.Refund()
		return false
	}
	return true
}

func (h *Hedger) refund() {
	h.budget.Refund()
	if h.shared != nil {
		h.shared.Refund()
	}
}
