package hedge

import (
	"context"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

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
// The first attempt runs on the caller's goroutine, so a call that needs
// no hedge costs no goroutine, and try may let attempt 0 write straight
// into the caller's memory (its reply): when Do returns, attempt 0 has
// returned. Each next attempt goes after the delay (at once after a
// non-final result), on a goroutine of its own, to another endpoint (each
// attempt's context carries its Attempt for the balancer), while
// maxAttempts, the budget and the call's deadline allow. The first final
// result wins; the other attempts are marked cancelled (see Call.Ended),
// then their contexts are cancelled; discard receives their results. A
// hedge that wins while attempt 0 still runs returns once attempt 0 has
// seen its cancellation.
func Do[R any](ctx context.Context, h *Hedger, try func(ctx context.Context, n int) R, judge func(R) Judgement, discard func(R)) (R, func()) {
	h.budget.Deposit()
	s := &run[R]{h: h, ctx: ctx, call: &Call{hedger: h}, try: try, judge: judge, discard: discard,
		obs: h.observer(), done: make(chan struct{})}
	s.mu.Lock()
	actx := s.startLocked(0)
	s.armLocked()
	s.mu.Unlock()
	s.attempt(actx, 0)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.win.r, s.cancels[s.win.n]
}

// run is the state of one call's attempts.
type run[R any] struct {
	// Read-only after Do's start.
	h       *Hedger
	ctx     context.Context
	call    *Call
	try     func(context.Context, int) R
	judge   func(R) Judgement
	discard func(R)
	obs     Observer
	done    chan struct{} // closed when the winner is decided

	mu      sync.Mutex
	sent    int // attempts started
	pending int // attempts started and not finished
	cancels [MaxAttempts]context.CancelFunc
	starts  [MaxAttempts]time.Time
	ended   [MaxAttempts]bool
	timer   clock.Timer
	failed  *outcome[R] // the latest non-final result, kept in case none wins
	decided bool
	win     outcome[R]
}

// startLocked starts attempt n's bookkeeping and returns its context.
func (s *run[R]) startLocked(n int) context.Context {
	actx, cancel := context.WithCancel(s.ctx)
	s.cancels[n], s.starts[n] = cancel, s.h.clk.Now()
	s.sent++
	s.pending++
	return WithAttempt(actx, s.call, n)
}

// armLocked arms the timer of the next attempt, if one may go.
func (s *run[R]) armLocked() {
	if s.sent >= s.h.policy.MaxAttempts {
		return
	}
	d, ok := s.h.delay.Delay()
	if !ok {
		return
	}
	if d, ok = s.h.next(s.ctx, d); !ok {
		return
	}
	s.timer = s.h.clk.AfterFunc(d, s.onTimer)
}

func (s *run[R]) stopTimerLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// hedgeLocked starts the next attempt if maxAttempts, the deadline and the
// budget allow; the caller runs it (s.attempt) after unlocking.
func (s *run[R]) hedgeLocked() (context.Context, int, bool) {
	if s.decided || s.sent >= s.h.policy.MaxAttempts {
		return nil, 0, false
	}
	if _, ok := s.h.next(s.ctx, 0); !ok {
		return nil, 0, false
	}
	if !s.h.take() {
		s.obs.HedgeRefused()
		return nil, 0, false
	}
	n := s.sent
	actx := s.startLocked(n)
	s.obs.HedgeSent()
	return actx, n, true
}

// onTimer sends the next attempt when the delay has passed, on the timer's
// goroutine.
func (s *run[R]) onTimer() {
	s.mu.Lock()
	if s.decided {
		s.mu.Unlock()
		return
	}
	actx, n, ok := s.hedgeLocked()
	if ok {
		s.armLocked()
	}
	s.mu.Unlock()
	if ok {
		s.attempt(actx, n)
	}
}

func (s *run[R]) attempt(actx context.Context, n int) { s.finish(n, s.try(actx, n)) }

// finish takes attempt n's result.
func (s *run[R]) finish(n int, r R) {
	s.mu.Lock()
	cancel := s.cancels[n]
	if s.decided {
		s.mu.Unlock()
		cancel()
		s.discard(r)
		return
	}
	s.pending--
	s.ended[n] = true
	if n > 0 && s.call.wasRefused(n) {
		// The balancer found no endpoint the call is not already on:
		// nothing was sent.
		s.h.refund()
		if s.pending > 0 || s.failed != nil {
			var after func()
			if s.pending == 0 {
				f := *s.failed
				s.failed = nil
				after = s.decideLocked(f, s.judge(f.r).Timed)
			}
			s.mu.Unlock()
			cancel()
			s.discard(r)
			if after != nil {
				after()
			}
			return
		}
	}
	j := s.judge(r)
	if j.Final {
		after := s.decideLocked(outcome[R]{n, r}, j.Timed)
		s.mu.Unlock()
		after()
		return
	}
	// A non-fatal failure: "the next hedged request in line, if any, is
	// sent immediately" - gRFC A6.
	s.stopTimerLocked()
	actx, next, ok := s.hedgeLocked()
	if ok {
		s.armLocked()
	}
	if s.pending == 0 {
		// Nothing left: the last failure is the call's.
		after := s.decideLocked(outcome[R]{n, r}, j.Timed)
		s.mu.Unlock()
		after()
		return
	}
	prev := s.failed
	s.failed = &outcome[R]{n, r}
	var prevCancel context.CancelFunc
	if prev != nil {
		prevCancel = s.cancels[prev.n]
	}
	s.mu.Unlock()
	if prev != nil {
		prevCancel()
		s.discard(prev.r)
	}
	if ok {
		go s.attempt(actx, next)
	}
}

// decideLocked makes o the call's result. The others are marked cancelled
// before the returned func (to call after unlocking) cancels them, so that
// the balancer never counts them against their endpoints.
func (s *run[R]) decideLocked(o outcome[R], timed bool) (after func()) {
	s.decided, s.win = true, o
	s.stopTimerLocked()
	now := s.h.clk.Now()
	var cancels []context.CancelFunc
	for n := range s.sent {
		if n == o.n || s.ended[n] {
			continue
		}
		s.call.Cancel(n)
		cancels = append(cancels, s.cancels[n])
	}
	// One sample per call, the latency of the attempt that answered: the
	// losers' durations are not sampled. A loser cancelled after a hedge
	// won is, more often than not, stuck on an instance that hung; as a
	// lower bound above the delay it made the delay climb while instances
	// hung (21 ms before the first hang, 38 ms at the end of one
	// hang-in-flight run), just when hedges mattered (see Delayer).
	if timed {
		s.h.delay.Observe(now.Sub(s.starts[o.n]))
	}
	if o.n > 0 {
		s.obs.HedgeWon()
	}
	failed := s.failed
	s.failed = nil
	if failed != nil && failed.n != o.n {
		cancels = append(cancels, s.cancels[failed.n])
	} else {
		failed = nil
	}
	return func() {
		for _, c := range cancels {
			c()
		}
		if failed != nil {
			s.discard(failed.r)
		}
		close(s.done)
	}
}
