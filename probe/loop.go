package probe

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// Prober sends one probe and classifies what it saw. ctx carries the
// probe's timeout and ends when the loop stops; a prober need not check
// for either beyond passing ctx to its I/O. Probe is called from one
// goroutine at a time.
type Prober interface {
	Probe(ctx context.Context) Result
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context) Result

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context) Result { return f(ctx) }

// Callbacks are what a Loop reports. They run on the loop's goroutine,
// never concurrently with each other, and none begins once Stop or Close
// has been called. Any may be nil.
type Callbacks struct {
	// Observe is called after every completed probe (a probe cut short by
	// Stop is not reported), before the result feeds the verdict.
	Observe func(Probe)
	// Note is called with the first result carrying each Note, so that
	// its owner warns once per loop, not once per probe.
	Note func(Result)
	// Verdict is called after the first probe (whatever its result) and
	// after every probe that changes the verdict; and again with the
	// current verdict after Refresh.
	Verdict func(healthy bool, reason string)
}

// Options injects the loop's time and randomness; the zero value uses the
// real clock and math/rand/v2.
type Options struct {
	// Clock times the waits and each probe's timeout. Default clock.Real().
	Clock clock.Clock
	// Rand returns a uniform draw from [0, 1) for the jitter. It must be
	// safe for concurrent use if shared. Default rand.Float64.
	Rand func() float64
}

// Loop probes one endpoint: at once, then, after each probe ends, a wait
// of Interval x (1 ± Jitter) before the next, so probes never overlap.
// Each probe is bounded by Timeout; a probe that ends by its timeout
// without an answer is a Timeout. The loop keeps the endpoint's Verdict
// under the thresholds of the config the probe started with.
//
// Stop and Close end it. The rule that keeps them from deadlocking: Close
// waits for a running callback to return, so never call Close from a
// callback, nor while holding a lock that a callback takes (release the
// lock, then Close). Stop never blocks and may be called from anywhere,
// a callback included; wait on Done afterwards, under the same rule as
// Close.
type Loop struct {
	// Read-only after Start.
	prober Prober
	cb     Callbacks
	clk    clock.Clock
	rand   func() float64
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{} // SetConfig or Refresh happened

	mu      sync.Mutex
	cfg     Config // newest; read at each probe and each wait
	refresh bool   // Refresh was called: deliver the verdict again

	// Owned by the loop's goroutine.
	v     Verdict
	noted map[Note]bool
}

// Start begins probing with p. cfg must be valid (Config.Validate); its
// Enabled and Warmup fields are the adapters' business and ignored here.
func Start(p Prober, cfg Config, cb Callbacks, o Options) *Loop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loop{
		prober: p,
		cb:     cb,
		clk:    clock.OrReal(o.Clock),
		rand:   o.Rand,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		wake:   make(chan struct{}, 1),
		cfg:    cfg,
	}
	if l.rand == nil {
		l.rand = rand.Float64 // the top-level function is safe for concurrent use
	}
	go l.run()
	return l
}

// SetConfig replaces the configuration. The probe in flight, if any,
// finishes under the old one; the next wait and probe use the new one. A
// wait in progress restarts with the new interval when Interval or Jitter
// changed (counted from now, not the rest of the old wait). It never
// blocks.
func (l *Loop) SetConfig(cfg Config) {
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
	l.poke()
}

// Refresh asks the loop to call Callbacks.Verdict again with the current
// verdict, from its goroutine: at once if it is waiting, after the probe
// in flight otherwise; not at all before the first probe, which delivers
// one anyway. An owner fanning one loop out to several listeners calls it
// when one joins. It never blocks.
func (l *Loop) Refresh() {
	l.mu.Lock()
	l.refresh = true
	l.mu.Unlock()
	l.poke()
}

func (l *Loop) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Stop ends the loop without waiting: no probe is sent and no callback
// begins after it (one already running completes). Idempotent.
func (l *Loop) Stop() { l.cancel() }

// Done is closed when the loop's goroutine has exited.
func (l *Loop) Done() <-chan struct{} { return l.done }

// Close stops the loop and waits for its goroutine to exit. Idempotent.
// See Loop for when not to call it.
func (l *Loop) Close() {
	l.cancel()
	<-l.done
}

func (l *Loop) config() Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

func (l *Loop) run() {
	defer close(l.done)
	for {
		cfg := l.config()
		if !l.probe(cfg) || !l.wait() {
			return
		}
	}
}

// probe sends one probe and reports its result; false when the loop
// stopped meanwhile.
func (l *Loop) probe(cfg Config) bool {
	timeout := time.Duration(cfg.Timeout)
	start := l.clk.Now()
	ctx, cancel := clock.WithTimeout(l.ctx, l.clk, timeout)
	r := l.prober.Probe(ctx)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if l.ctx.Err() != nil {
		return false
	}
	if timedOut && r.Outcome == Error {
		// The prober saw its I/O fail; the loop knows why.
		r = Result{Outcome: Timeout, Reason: fmt.Sprintf("timeout after %v", timeout)}
	}
	if l.cb.Observe != nil {
		end := l.clk.Now()
		l.cb.Observe(Probe{Outcome: r.Outcome, Reason: r.Reason, At: end, Duration: end.Sub(start)})
	}
	if r.Note != NoNote && !l.noted[r.Note] {
		if l.noted == nil {
			l.noted = map[Note]bool{}
		}
		l.noted[r.Note] = true
		if l.cb.Note != nil && l.ctx.Err() == nil {
			l.cb.Note(r)
		}
	}
	if l.v.Observe(r, cfg.HealthyThreshold, cfg.UnhealthyThreshold) {
		l.deliver()
	}
	return l.ctx.Err() == nil
}

// deliver calls Callbacks.Verdict with the current verdict, unless the
// loop stopped. It answers every Refresh made before it.
func (l *Loop) deliver() {
	l.mu.Lock()
	l.refresh = false
	l.mu.Unlock()
	if l.cb.Verdict != nil && l.v.Known() && l.ctx.Err() == nil {
		l.cb.Verdict(l.v.Healthy(), l.v.Reason())
	}
}

// wait waits Interval x (1 ± Jitter) of the newest config, restarting on
// a change of either; false when the loop stopped.
func (l *Loop) wait() bool {
	cfg := l.config()
	t := l.clk.NewTimer(l.jittered(cfg))
	defer func() { t.Stop() }()
	for {
		select {
		case <-l.ctx.Done():
			return false
		case <-t.C():
			return true
		case <-l.wake:
			l.mu.Lock()
			c, refresh := l.cfg, l.refresh
			l.mu.Unlock()
			if refresh {
				l.deliver()
				if l.ctx.Err() != nil {
					return false
				}
			}
			if c.Interval != cfg.Interval || c.Jitter != cfg.Jitter {
				cfg = c
				t.Stop()
				t = l.clk.NewTimer(l.jittered(cfg))
			}
		}
	}
}

// jittered draws the wait before the next probe.
func (l *Loop) jittered(cfg Config) time.Duration {
	return jittered(time.Duration(cfg.Interval), cfg.Jitter, l.rand())
}

// jittered returns interval*(1 + jitter*(2r-1)): for r uniform in [0, 1),
// a wait uniform from interval*(1-jitter) to interval*(1+jitter).
func jittered(interval time.Duration, jitter, r float64) time.Duration {
	return time.Duration(float64(interval) * (1 + jitter*(2*r-1)))
}
