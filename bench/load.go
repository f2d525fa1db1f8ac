package bench

import (
	"context"
	rand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// codeDropped names RPCs the open-loop generator never sent because the
// in-flight cap was reached; they count as errors.
const codeDropped = "DROPPED"

// recorder collects the outcome of every RPC of one measured run:
// an HDR histogram of all latencies (failed RPCs included: a caller waits
// for them too), status codes, and per-bucket latencies for the
// latency-over-time charts. Latency runs from the scheduled arrival, not
// the send, so a lagging generator cannot hide queueing (coordinated
// omission).
type recorder struct {
	start  time.Time
	bucket time.Duration
	// codeOf names a failed call's outcome in the error table; read-only
	// after newRecorder (gRPC status codes unless changed before use).
	codeOf func(error) string

	mu      sync.Mutex
	hist    *hdrhistogram.Histogram // microseconds
	codes   map[string]int64
	ok, all int64
	buckets [][]float64 // milliseconds, by arrival bucket
	bErrs   []int64     // failed and dropped arrivals, by bucket
	bDrops  []int64     // dropped arrivals alone, by bucket
}

func newRecorder(start time.Time, dur, bucket time.Duration) *recorder {
	n := int(dur/bucket) + 1
	return &recorder{
		start:   start,
		bucket:  bucket,
		codeOf:  grpcCodeOf,
		hist:    hdrhistogram.New(1, 60_000_000, 3),
		codes:   make(map[string]int64),
		buckets: make([][]float64, n),
		bErrs:   make([]int64, n),
		bDrops:  make([]int64, n),
	}
}

func (r *recorder) record(sched time.Time, lat time.Duration, err error) {
	us := max(lat.Microseconds(), 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all++
	_ = r.hist.RecordValue(us)
	i := int(sched.Sub(r.start) / r.bucket)
	i = min(max(i, 0), len(r.buckets)-1)
	r.buckets[i] = append(r.buckets[i], float64(us)/1000)
	if err == nil {
		r.ok++
		return
	}
	r.codes[r.codeOf(err)]++
	r.bErrs[i]++
}

func (r *recorder) drop(sched time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codes[codeDropped]++
	i := int(sched.Sub(r.start) / r.bucket)
	i = min(max(i, 0), len(r.bErrs)-1)
	r.bErrs[i]++
	r.bDrops[i]++
}

// merge adds o's counts to r (closed loop: one recorder per worker).
func (r *recorder) merge(o *recorder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	r.hist.Merge(o.hist)
	r.ok += o.ok
	r.all += o.all
	for k, v := range o.codes {
		r.codes[k] += v
	}
	for i := range o.buckets {
		r.buckets[i] = append(r.buckets[i], o.buckets[i]...)
		r.bErrs[i] += o.bErrs[i]
		r.bDrops[i] += o.bDrops[i]
	}
}

// timeline returns p99 and counts per bucket.
func (r *recorder) timeline() []Bucket {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Bucket, 0, len(r.buckets))
	for i, b := range r.buckets {
		bk := Bucket{T: (time.Duration(i) * r.bucket).Seconds(), N: len(b), Errors: r.bErrs[i]}
		if len(b) > 0 {
			s := append([]float64(nil), b...)
			sort.Float64s(s)
			bk.P99 = s[min(len(s)-1, int(float64(len(s))*0.99))]
		}
		out = append(out, bk)
	}
	// The last bucket holds only the tail of the run's arrivals.
	if len(out) > 1 && out[len(out)-1].N == 0 {
		out = out[:len(out)-1]
	}
	return out
}

func grpcCodeOf(err error) string { return codeName(status.Code(err)) }

func codeName(c codes.Code) string {
	if c == codes.Canceled {
		return "CANCELLED"
	}
	return upperSnake(c.String())
}

// upperSnake turns "DeadlineExceeded" into "DEADLINE_EXCEEDED".
func upperSnake(s string) string {
	out := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i > 0 && c >= 'A' && c <= 'Z' {
			out = append(out, '_')
		}
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// openLoop sends RPCs with Poisson arrivals at rate per second for
// warmup+dur. Arrivals of the warmup are not recorded; onMeasure runs
// once when the measured part begins. At most maxInFlight RPCs are
// outstanding; an arrival beyond that is recorded as dropped. It returns
// after every RPC it started has finished (each is bounded by deadline).
// call sends one request (a gRPC RPC or an HTTP request) under ctx.
func openLoop(ctx context.Context, call func(context.Context) error, rng *rand.Rand, rate float64, warmup, dur, deadline time.Duration, maxInFlight int, rec *recorder, onMeasure func()) {
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
	)
	start := time.Now()
	measureAt := start.Add(warmup)
	end := measureAt.Add(dur)
	measuring := false
	next := start
	for {
		next = next.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
		if !next.Before(end) || ctx.Err() != nil {
			break
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		record := !next.Before(measureAt)
		if record && !measuring {
			measuring = true
			onMeasure()
		}
		if inFlight.Load() >= int64(maxInFlight) {
			if record {
				rec.drop(next)
			}
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func(sched time.Time) {
			defer wg.Done()
			defer inFlight.Add(-1)
			cctx, cancel := context.WithTimeout(ctx, deadline)
			err := call(cctx)
			cancel()
			if record {
				rec.record(sched, time.Since(sched), err)
			}
		}(next)
	}
	if !measuring {
		onMeasure()
	}
	wg.Wait()
}

// closedLoop runs workers that each send one RPC after another for
// warmup+dur, recording the measured part.
func closedLoop(ctx context.Context, cli testgrpc.TestServiceClient, workers int, warmup, dur, deadline time.Duration, rec *recorder, onMeasure func()) {
	start := time.Now()
	measureAt := start.Add(warmup)
	end := measureAt.Add(dur)
	var wg sync.WaitGroup
	recs := make([]*recorder, workers)
	for w := range workers {
		recs[w] = newRecorder(measureAt, dur, rec.bucket)
		wg.Add(1)
		go func(r *recorder) {
			defer wg.Done()
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(end) {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, deadline)
				_, err := cli.UnaryCall(cctx, &testpb.SimpleRequest{})
				cancel()
				if !t.Before(measureAt) {
					r.record(t, time.Since(t), err)
				}
			}
		}(recs[w])
	}
	if d := time.Until(measureAt); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	onMeasure()
	wg.Wait()
	for _, r := range recs {
		rec.merge(r)
	}
}
