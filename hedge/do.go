package hedge

import (
	"context"
	"sync"
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

// Judgement is what an attempt's result means for the call.
type Judgement struct {
	// Final: the result ends the call (it wins). Otherwise the attempt
	// failed in a way another endpoint may not (gRFC A6's non-fatal
	// status codes): the next attempt goes at once, and the result is the
	// call's only if no other attempt is left.
	Final bool
	// Timed: the attempt's duration is its latency, or a lower bound of
	// it, for the adaptive delay.
	Timed bool
}

type outcome[R any] struct {
	n int
	r R
}

// Do runs the attempts of one call and returns the result that wins, with
// the release of the winner's context, which the caller must call once
// it is done with the result (HTTP: when the response body ends).
//
// The first attempt goes at once; each next one after the delay (at once
// after a non-final result), to another endpoint (each attempt's context
// carries its Attempt for the balancer), while maxAttempts, the budget and
// the call's deadline allow. The first final result wins; the other
// attempts are marked cancelled (see Call.Ended) and then their contexts
// are cancelled; discard receives their results when they come.
func Do[R any](ctx context.Context, h *Hedger, try func(ctx context.Context, n int) R, judge func(R) Judgement, discard func(R)) (R, func()) {
	h.budget.Deposit()
	call := &Call{hedger: h}
	var (
		mu      sync.Mutex // guards done, and the send to results
		done    bool
		results = make(chan outcome[R], MaxAttempts)
		cancels [MaxAttempts]context.CancelFunc
		starts  [MaxAttempts]time.Time
		ended   [MaxAttempts]bool
	)
	launch := func(n int) {
		actx, cancel := context.WithCancel(ctx)
		cancels[n], starts[n] = cancel, h.clk.Now()
		go func() {
			r := try(WithAttempt(actx, call, n), n)
			mu.Lock()
			if done {
				mu.Unlock()
				cancel()
				discard(r)
				return
			}
			results <- outcome[R]{n, r}
			mu.Unlock()
		}()
	}
	obs := h.observer()
	launch(0)
	sent, pending := 1, 1
	var timer clock.Timer
	var timerC <-chan time.Time
	arm := func() {
		if sent >= h.policy.MaxAttempts {
			return
		}
		d, ok := h.delay.Delay()
		if !ok {
			return
		}
		if d, ok = h.next(ctx, d); !ok {
			return
		}
		if timer == nil {
			timer = h.clk.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		timerC = timer.C()
	}
	hedge := func() bool {
		if sent >= h.policy.MaxAttempts {
			return false
		}
		if _, ok := h.next(ctx, 0); !ok {
			return false
		}
		if !h.take() {
			obs.HedgeRefused()
			return false
		}
		launch(sent)
		sent++
		pending++
		obs.HedgeSent()
		return true
	}
	arm()
	var last outcome[R]
	var failed *outcome[R] // the latest non-final result, kept in case none wins
	var j Judgement
	for {
		select {
		case <-timerC:
			timerC = nil
			if hedge() {
				arm()
			}
			continue
		case last = <-results:
		}
		pending--
		ended[last.n] = true
		if last.n > 0 && call.wasRefused(last.n) {
			// The balancer found no endpoint the call is not already
			// on: nothing was sent.
			h.refund()
			if pending > 0 || failed != nil {
				cancels[last.n]()
				discard(last.r)
				if pending > 0 {
					continue
				}
				last, failed = *failed, nil
				j = judge(last.r)
				break
			}
		}
		if j = judge(last.r); j.Final {
			break
		}
		// A non-fatal failure: "the next hedged request in line, if any,
		// is sent immediately" - gRFC A6.
		if timer != nil {
			timer.Stop()
			timerC = nil
		}
		if hedge() {
			arm()
		}
		if pending == 0 {
			break // nothing left: the last failure is the call's
		}
		if failed != nil {
			cancels[failed.n]()
			discard(failed.r)
		}
		failed = &outcome[R]{last.n, last.r}
	}
	if failed != nil && failed.n != last.n {
		cancels[failed.n]()
		discard(failed.r)
	}
	if timer != nil {
		timer.Stop()
	}
	// The winner: mark the others cancelled before cancelling them, so
	// that the balancer never counts them against their endpoints.
	now := h.clk.Now()
	for n := range sent {
		if n != last.n && !ended[n] {
			call.Cancel(n)
			// A lower bound of its latency: it ranks above the delay.
			h.delay.Observe(now.Sub(starts[n]))
		}
	}
	mu.Lock()
	done = true
	mu.Unlock()
	for n := range sent {
		if n != last.n {
			cancels[n]()
		}
	}
	for {
		select {
		case o := <-results:
			cancels[o.n]()
			discard(o.r)
			continue
		default:
		}
		break
	}
	if j.Timed {
		h.delay.Observe(now.Sub(starts[last.n]))
	}
	if last.n > 0 {
		obs.HedgeWon()
	}
	return last.r, cancels[last.n]
}
