package hedge

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram: log-linear buckets (8 per power of two, so a
// bucket is at most 12.5 % wide) from 1µs to about 70s, lock-free. Values
// below 1µs fall in the first bucket, above the range in the last.
const (
	subBits     = 3
	subBuckets  = 1 << subBits
	minOctave   = 10 // 2^10 ns ≈ 1µs
	maxOctave   = 36 // 2^36 ns ≈ 69s
	histBuckets = (maxOctave - minOctave + 1) * subBuckets
)

// window is how long one generation of the histogram collects samples:
// quantiles read the current and the previous generation, so a sample
// counts for between one and two windows (Finagle's windowed histogram
// keeps the last 30 seconds; hedging must follow load changes faster).
const window = 5 * time.Second

// minSamples is the number of samples the histogram must hold before the
// adaptive delay is trusted; until then calls are not hedged (a delay
// read from a handful of samples would hedge far more than the budget).
const minSamples = 100

// recompute is how often the delay is computed again from the histogram:
// reading it is one atomic load per call.
const recompute = 100 * time.Millisecond

func bucketOf(ns int64) int {
	if ns < 1<<minOctave {
		return 0
	}
	oct := bits.Len64(uint64(ns)) - 1
	if oct > maxOctave {
		return histBuckets - 1
	}
	sub := int(ns>>(oct-subBits)) & (subBuckets - 1)
	return (oct-minOctave)*subBuckets + sub
}

// upperOf is the upper bound of bucket i, in nanoseconds.
func upperOf(i int) int64 {
	oct, sub := i/subBuckets+minOctave, i%subBuckets
	return int64(subBuckets+sub+1) << (oct - subBits)
}

type generation struct {
	epoch  atomic.Int64
	counts [histBuckets]atomic.Uint32
}

// Delayer computes the hedging delay of a channel or host: fixed, or a
// latency percentile of recent calls chosen from the budget, after
// Finagle's BackupRequestFilter (it sends backups at the percentile that
// keeps them under maxExtraLoad).
//
// The samples are the calls, one each: the latency of the attempt that
// answered (Do observes no loser). Finagle's rule would also count the
// attempts that lost, at least as long as the race; but when an instance
// hangs, the calls stuck on it are exactly those, and their lower bounds
// pushed the percentile up while instances hung (in one hang-in-flight
// run, 21 ms before the first hang, 38 ms at the end), so that the rescued
// calls finished at the raised delay plus a normal latency: a p99.9 3x the
// homogeneous scenario's. Without them the delay follows the latency of
// the attempts that work (19-23 ms through the same run).
//
// Dropping the losers counts fewer calls above the delay than were hedged
// (a hedge that wins hides a slow first attempt), by at most the share of
// hedges that win: up to half with a 3x slower peer's tail. So the
// percentile is the one that spends a QUARTER of the budget, the
// (100 - maxExtraLoad/4)th (98.75th for 5): the steady tail costs at
// most about half, and the other half rescues the bursts of calls stuck
// on an instance that just hung, when hedges matter most. In
// hang-in-flight (8 s), hedging at the (100 - maxExtraLoad)th percentile
// of every attempt drained the budget (6.4 % extra load, 3 RPCs lost to
// deadlines). Observe and Delay take no lock.
type Delayer struct {
	// Read-only after NewDelayer.
	fixed    time.Duration
	floor    time.Duration
	quantile float64 // 1 - maxExtraLoad/4
	now      func() time.Time
	base     time.Time

	gens [2]generation

	next   atomic.Int64 // ns since base when the cached values are stale
	delay  atomic.Int64 // cached delay in ns; <0: not enough samples
	median atomic.Int64 // cached median latency in ns; 0: unknown
}

// NewDelayer returns the delay of p (with its defaults) read on now (nil:
// time.Now).
func NewDelayer(p Policy, now func() time.Time) *Delayer {
	if now == nil {
		now = time.Now
	}
	d := &Delayer{
		fixed:    time.Duration(p.Delay),
		floor:    time.Duration(p.MinDelay),
		quantile: 1 - p.MaxExtraLoadPercent/400,
		now:      now,
		base:     now(),
	}
	d.delay.Store(-1)
	return d
}

func (d *Delayer) elapsed() int64 { return int64(d.now().Sub(d.base)) }

// Observe records the latency of one call: the duration of the attempt
// that answered it, or a lower bound of it (a call cut by its deadline),
// which still ranks the call above the delay.
func (d *Delayer) Observe(latency time.Duration) {
	now := d.elapsed()
	e := now / int64(window)
	g := &d.gens[e%2]
	if old := g.epoch.Load(); old != e && g.epoch.CompareAndSwap(old, e) {
		// A new window: this generation's samples are two windows old.
		// Samples added by others while it is cleared may be lost; that
		// is noise in a histogram.
		for i := range g.counts {
			g.counts[i].Store(0)
		}
	}
	g.counts[bucketOf(int64(latency))].Add(1)
}

// Delay returns the delay after which the next attempt of a call is sent,
// and false while the adaptive delay has too few samples to be known.
func (d *Delayer) Delay() (time.Duration, bool) {
	if d.fixed > 0 {
		return d.fixed, true
	}
	d.refresh()
	v := d.delay.Load()
	return time.Duration(v), v >= 0
}

// Adaptive reports whether the delay follows the latencies.
func (d *Delayer) Adaptive() bool { return d.fixed == 0 }

// Median returns the median recent latency, 0 if unknown: a hedge sent
// with less time than that before the deadline would rarely win.
func (d *Delayer) Median() time.Duration {
	d.refresh()
	return time.Duration(d.median.Load())
}

// refresh recomputes the cached values at most every recompute.
func (d *Delayer) refresh() {
	now := d.elapsed()
	next := d.next.Load()
	if now < next || !d.next.CompareAndSwap(next, now+int64(recompute)) {
		return
	}
	e := now / int64(window)
	var counts [histBuckets]uint64
	total := uint64(0)
	for gi := range d.gens {
		g := &d.gens[gi]
		if ge := g.epoch.Load(); ge != e && ge != e-1 {
			continue // older than the previous window
		}
		for i := range g.counts {
			c := uint64(g.counts[i].Load())
			counts[i] += c
			total += c
		}
	}
	if total < minSamples {
		d.delay.Store(-1)
		d.median.Store(0)
		return
	}
	q := quantileOf(&counts, total, d.quantile)
	d.delay.Store(int64(max(q, d.floor)))
	d.median.Store(int64(quantileOf(&counts, total, 0.5)))
}

// quantileOf returns the upper bound of the bucket holding the q-quantile.
func quantileOf(counts *[histBuckets]uint64, total uint64, q float64) time.Duration {
	rank := uint64(q * float64(total))
	cum := uint64(0)
	for i, c := range counts {
		cum += c
		if cum > rank {
			return time.Duration(upperOf(i))
		}
	}
	return time.Duration(upperOf(histBuckets - 1))
}
