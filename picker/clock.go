package picker

import (
	"sync/atomic"
	"time"
)

// clockBase anchors nanotime: time.Since reads only the monotonic clock.
var clockBase = time.Now()

// fakeClock, when set (tests), replaces the monotonic clock. fakeCoarse,
// set with it, replaces the coarse clock, so that the sampling rule
// (sample.go) applies; without, every reading is real and every request
// is timed.
var (
	fakeClock  func() int64
	fakeCoarse func() int64
)

// nanotime is monotonic nanoseconds since clockBase. A direct function,
// not a func variable, so that it inlines into Select and Finish: the
// clock read itself (time.Since reads only the monotonic clock, as
// runtime.nanotime does) costs 35-40ns on a KVM guest, the call around it
// should cost nothing.
func nanotime() int64 {
	if fakeClock != nil {
		return fakeClock()
	}
	return realNanotime()
}

// Nanotime is the clock Select and Finish read: monotonic nanoseconds
// since ClockBase. A breaker that reads it (see Endpoint.ShareClock) is
// handed Finish's reading instead of reading the clock again.
func Nanotime() int64 { return nanotime() }

// ClockBase is the instant Nanotime counts from.
func ClockBase() time.Time { return clockBase }

// A real clock read costs about as much as the rest of a pick (35-40 ns on
// a KVM guest, two per request: one when a request is picked, one when it
// ends). The choice needs the time only to decay two candidates' latency
// estimates (LatencyDecay, seconds), for the age bound (134 ms slots) and
// the trickle allowance (LatencyDecay / 4): a reading a millisecond old
// serves as well. So under load picks read a coarse clock, a word that
// one goroutine (the ticker) refreshes every coarseTick, and only sampled
// requests read the real clock (sample.go).
//
// The ticker is process-wide, like clockBase: one per process whatever the
// number of channels and transports, and it runs only while picks are
// frequent. It starts when startPicks picks read the real clock within
// startWindow (16 000 picks per second or more: there the clock reads are
// a tenth of a core's time, the ticker's thousand wake-ups per second a
// small fraction of that), and stops, setting the word to 0, after a
// block of stopBlock ticks of which fewer than stopBusy saw a pick (below
// about 1 500 picks per second). Picks then read the real clock again: at
// low and moderate rates everything is as without it (every request is
// timed). It owns no resource but itself, so it needs no Close: it is
// gone at most two blocks after the last pick (goleak's retries wait
// longer).
const (
	coarseTick  = time.Millisecond
	startWindow = int64(time.Millisecond)
	startPicks  = 16
	stopBlock   = 20
	stopBusy    = 15
)

// coarseClock is the coarse clock's state. now is on a line of its own:
// every pick reads it, the ticker writes it once per tick.
type coarseClock struct {
	_    [cacheLine]byte
	now  atomic.Int64 // nanotime at the last tick; 0: stopped
	used atomic.Bool  // a pick read now since the last tick
	_    [cacheLine - 9]byte

	running atomic.Bool  // a ticker goroutine is live
	winAt   atomic.Int64 // while stopped: start of the window picks are counted in
	winN    atomic.Int32 // picks counted since winAt
	_       [cacheLine - 24]byte
}

var coarse coarseClock

// recentNow returns the time for a choice: a coarse reading (at most
// about a tick old) while the ticker runs, else a real one, and whether it
// is real.
func recentNow() (now int64, real bool) {
	if fakeClock == nil {
		if c := coarse.now.Load(); c != 0 {
			if !coarse.used.Load() {
				coarse.used.Store(true) // once per tick per core at most
			}
			return c, false
		}
	}
	return slowNow()
}

// slowNow is recentNow on a fake clock or while the ticker is stopped: a
// real reading, counted toward starting the ticker.
func slowNow() (now int64, real bool) {
	if fakeClock != nil {
		if fakeCoarse != nil {
			return fakeCoarse(), false
		}
		return fakeClock(), true
	}
	now = realNanotime()
	coarse.count(now)
	return now, true
}

// count counts a pick at the real reading now, and starts the ticker at
// the startPicks-th within startWindow. Racy (a window may be restarted
// twice, a pick lost): it only tells frequent picks from others.
func (c *coarseClock) count(now int64) {
	if now-c.winAt.Load() > startWindow {
		c.winAt.Store(now)
		c.winN.Store(1)
		return
	}
	if c.winN.Add(1) >= startPicks && c.running.CompareAndSwap(false, true) {
		c.winAt.Store(0)
		go runCoarse()
	}
}

// coarseRecent returns a coarse reading for a request's end (a breaker's
// outcome), or 0 if the ticker is stopped (the breaker then reads its
// clock).
func coarseRecent() int64 {
	if fakeClock != nil {
		if fakeCoarse != nil {
			return fakeCoarse()
		}
		return 0
	}
	return coarse.now.Load()
}

// advance moves the coarse clock to a real reading now taken by a sampled
// request, if it is more than a tick behind (the ticker ran late: a loaded
// machine). Never from 0: a stopped clock stays stopped.
func (c *coarseClock) advance(now int64) {
	if fakeClock != nil {
		return // a fake reading
	}
	if old := c.now.Load(); old != 0 && now-old > int64(coarseTick) {
		c.now.CompareAndSwap(old, now)
	}
}

// runCoarse is the ticker. It reads the real clock even while a test
// fakes nanotime: the coarse clock is never read on a fake one.
func runCoarse() {
	c := &coarse
	t := time.NewTicker(coarseTick)
	defer t.Stop()
	c.used.Store(true)
	c.now.Store(realNanotime())
	for n, busy := 0, 0; ; {
		<-t.C
		if c.used.Load() {
			c.used.Store(false)
			busy++
		}
		if n++; n == stopBlock {
			if busy < stopBusy {
				c.now.Store(0)
				c.running.Store(false)
				return
			}
			n, busy = 0, 0
		}
		c.now.Store(realNanotime())
	}
}

func realNanotime() int64 { return int64(time.Since(clockBase)) }
