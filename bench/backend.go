package bench

import (
	"context"
	"math"
	rand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/status"
)

// nominalSlots is the concurrency a backend without a capacity limit
// reports its utilization against (ORCA cpu_utilization). Only ratios
// between backends matter to weighted_round_robin, so any constant works.
const nominalSlots = 8

// backend is a real grpc.Server on 127.0.0.1 whose behaviour the scenario
// changes while it runs. Unlike internal/testutil.Backend it models
// service time, a concurrency capacity, stalls, a cold start, a health
// service that can hang, per-call ORCA reports, and a restart on the same
// port; it counts the application RPCs it received (the server-side
// shares of the report).
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	healthpb.UnimplementedHealthServer

	// Read-only after newBackend.
	id    int
	addr  string
	base  time.Duration // fixed part of the service time
	jit   time.Duration // mean of the exponential part of the service time
	sem   chan struct{} // capacity limit; nil: unlimited
	slots float64       // capacity reported to ORCA
	stop  chan struct{} // closed by close(): releases hung handlers, ends the stats ticker
	done  chan struct{} // closed when the stats ticker has returned

	hits      atomic.Int64
	hitsNotOK atomic.Int64 // hits while the health status was NOT_SERVING

	slowX      atomic.Uint64 // math.Float64bits of the latency multiplier
	failCode   atomic.Uint32 // non-zero: every RPC fails with this code
	hung       atomic.Bool   // RPCs and health checks block until the deadline
	notServing atomic.Bool   // health reports NOT_SERVING
	// Stall schedule: from stallFrom on, the first stallLen of every
	// stallEvery blocks every RPC and health check.
	stallFrom  atomic.Int64 // unix nanos; 0: never
	stallEvery atomic.Int64
	stallLen   atomic.Int64
	// Cold start: the latency multiplier starts at coldX at coldFrom and
	// decays linearly to 1 over coldFor.
	coldFrom atomic.Int64 // unix nanos; 0: warm
	coldFor  atomic.Int64
	coldX    atomic.Uint64
	// Overload (zones scenario): a concurrency limit with a bounded
	// queue set while the run goes; nil: unlimited.
	limit atomic.Pointer[limiter]
	// Application RPCs per window of the measured part; nil before it.
	series atomic.Pointer[series]

	// Windowed load for ORCA: completed RPCs, errors and busy time
	// (time holding a capacity slot), summed over the last second.
	calls, errs, busy atomic.Int64
	qps, eps, util    atomic.Uint64 // float64 bits, refreshed by the ticker

	mu     sync.Mutex
	srv    *grpc.Server // nil while killed
	closed bool
	watch  chan struct{} // closed and replaced on every health change
}

type backendOptions struct {
	base, jitter time.Duration
	capacity     int // 0: unlimited
}

func newBackend(id int, o backendOptions) (*backend, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{
		id:    id,
		addr:  lis.Addr().String(),
		base:  o.base,
		jit:   o.jitter,
		slots: nominalSlots,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		watch: make(chan struct{}),
	}
	if o.capacity > 0 {
		b.sem = make(chan struct{}, o.capacity)
		b.slots = float64(o.capacity)
	}
	b.slowX.Store(math.Float64bits(1))
	b.serve(lis)
	go b.statsLoop()
	return b, nil
}

func (b *backend) serve(lis net.Listener) {
	srv := grpc.NewServer(orca.CallMetricsServerOption(nil))
	testgrpc.RegisterTestServiceServer(srv, b)
	healthpb.RegisterHealthServer(srv, b)
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.Serve(lis)
}

// kill stops the server at once: connections close, open RPCs fail.
func (b *backend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// restart serves again on the same port. Go's listeners set SO_REUSEADDR,
// so the port is free again as soon as the old listener is closed.
func (b *backend) restart() error {
	b.mu.Lock()
	if b.srv != nil || b.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // bounded: 50 x 20ms
		if lis, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	b.serve(lis)
	return nil
}

// close stops the server and the stats ticker and releases hung handlers.
func (b *backend) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.kill()
	<-b.done
}

func (b *backend) setSlow(x float64) { b.slowX.Store(math.Float64bits(x)) }

func (b *backend) setNotServing(v bool) {
	b.notServing.Store(v)
	b.mu.Lock()
	close(b.watch)
	b.watch = make(chan struct{})
	b.mu.Unlock()
}

func (b *backend) setStall(from time.Time, every, length time.Duration) {
	b.stallEvery.Store(int64(every))
	b.stallLen.Store(int64(length))
	b.stallFrom.Store(from.UnixNano())
}

func (b *backend) setCold(from time.Time, x float64, d time.Duration) {
	b.coldX.Store(math.Float64bits(x))
	b.coldFor.Store(int64(d))
	b.coldFrom.Store(from.UnixNano())
}

// stallLeft returns how long the current stall lasts from now (0: none).
func (b *backend) stallLeft(now time.Time) time.Duration {
	from := b.stallFrom.Load()
	if from == 0 || now.UnixNano() < from {
		return 0
	}
	every, length := b.stallEvery.Load(), b.stallLen.Load()
	if every <= 0 {
		return 0
	}
	phase := (now.UnixNano() - from) % every
	if phase >= length {
		return 0
	}
	return time.Duration(length - phase)
}

// latencyFactor is the current service-time multiplier (slow x cold).
func (b *backend) latencyFactor(now time.Time) float64 {
	x := math.Float64frombits(b.slowX.Load())
	if from := b.coldFrom.Load(); from != 0 {
		d := float64(b.coldFor.Load())
		if el := float64(now.UnixNano() - from); el >= 0 && el < d {
			cx := math.Float64frombits(b.coldX.Load())
			x *= 1 + (cx-1)*(1-el/d)
		}
	}
	return x
}

// wait blocks for d or until ctx ends or the backend closes.
func (b *backend) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-b.stop:
		return status.Error(codes.Unavailable, "backend closed")
	}
}

// UnaryCall implements TestService: the RPC every scenario sends.
func (b *backend) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.hits.Add(1)
	if s := b.series.Load(); s != nil {
		s.add(time.Now())
	}
	if b.notServing.Load() {
		b.hitsNotOK.Add(1)
	}
	err := b.handle(ctx)
	if err != nil {
		b.errs.Add(1)
	}
	b.calls.Add(1)
	if r := orca.CallMetricsRecorderFromContext(ctx); r != nil {
		// Per-call ORCA report (gRFC A51) for weighted_round_robin, which
		// weighs an endpoint by qps / (utilization + eps/qps).
		r.SetCPUUtilization(math.Float64frombits(b.util.Load()))
		r.SetQPS(math.Float64frombits(b.qps.Load()))
		r.SetEPS(math.Float64frombits(b.eps.Load()))
	}
	if err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{}, nil
}

func (b *backend) handle(ctx context.Context) error {
	if b.hung.Load() {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-b.stop:
			return status.Error(codes.Unavailable, "backend closed")
		}
	}
	if err := b.wait(ctx, b.stallLeft(time.Now())); err != nil {
		return err
	}
	if c := codes.Code(b.failCode.Load()); c != codes.OK {
		return status.Errorf(c, "backend %d configured to fail", b.id)
	}
	if l := b.limit.Load(); l != nil {
		release, err := l.acquire(ctx, b.stop)
		if err != nil {
			return err
		}
		defer release()
	}
	if b.sem != nil {
		select {
		case b.sem <- struct{}{}:
			defer func() { <-b.sem }()
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-b.stop:
			return status.Error(codes.Unavailable, "backend closed")
		}
	}
	start := time.Now()
	d := float64(b.base)
	if b.jit > 0 {
		d += rand.ExpFloat64() * float64(b.jit)
	}
	d *= b.latencyFactor(start)
	err := b.wait(ctx, time.Duration(d))
	b.busy.Add(int64(time.Since(start)))
	return err
}

// statsLoop refreshes the ORCA figures every 100ms over a 1s window.
func (b *backend) statsLoop() {
	defer close(b.done)
	const buckets = 10
	type sample struct{ calls, errs, busy int64 }
	var ring [buckets]sample
	var prev sample
	tick := time.NewTicker(time.Second / buckets)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		cur := sample{b.calls.Load(), b.errs.Load(), b.busy.Load()}
		ring[i%buckets] = sample{cur.calls - prev.calls, cur.errs - prev.errs, cur.busy - prev.busy}
		prev = cur
		var sum sample
		for _, s := range ring {
			sum.calls += s.calls
			sum.errs += s.errs
			sum.busy += s.busy
		}
		b.qps.Store(math.Float64bits(float64(sum.calls)))
		b.eps.Store(math.Float64bits(float64(sum.errs)))
		// Floor the utilization so a fast-failing backend still reports a
		// usable (non-zero) figure; wrr ignores reports with zero.
		u := max(float64(sum.busy)/float64(time.Second)/b.slots, 0.001)
		b.util.Store(math.Float64bits(u))
	}
}

// Check implements grpc.health.v1.Health. It hangs while the backend is
// hung and waits out a stall, like the application handler: a probe
// must see what the traffic sees.
func (b *backend) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if b.hung.Load() {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-b.stop:
			return nil, status.Error(codes.Unavailable, "backend closed")
		}
	}
	if err := b.wait(ctx, b.stallLeft(time.Now())); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: b.healthStatus()}, nil
}

func (b *backend) healthStatus() healthpb.HealthCheckResponse_ServingStatus {
	if b.notServing.Load() {
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	return healthpb.HealthCheckResponse_SERVING
}

// Watch implements grpc.health.v1.Health (used by grpc's own client-side
// health checking). A hung backend sends nothing.
func (b *backend) Watch(_ *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		b.mu.Lock()
		ch := b.watch
		b.mu.Unlock()
		if st := b.healthStatus(); st != last && !b.hung.Load() {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-ch:
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-b.stop:
			return status.Error(codes.Unavailable, "backend closed")
		}
	}
}
