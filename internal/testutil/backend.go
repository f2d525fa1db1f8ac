// Package testutil runs real grpc-go backends on 127.0.0.1 for Fulcrum's
// tests, examples and benchmarks.
package testutil

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Backend is a real grpc.Server on 127.0.0.1 serving grpc.testing.TestService
// and grpc.health.v1.Health, whose behaviour (delay, failure) can be changed
// while it runs. It counts the application RPCs it received.
type Backend struct {
	testgrpc.UnimplementedTestServiceServer

	// Addr is the backend's host:port on 127.0.0.1.
	Addr string
	// Health is the backend's health service; SetServingStatus changes what
	// probes see.
	Health *health.Server

	srv  *grpc.Server
	lis  net.Listener
	hits atomic.Int64

	delay    atomic.Int64  // nanoseconds added to every RPC
	failCode atomic.Uint32 // non-zero: every RPC fails with this code
	hung     atomic.Bool   // RPCs block until the caller gives up or Stop
	hangCh   chan struct{} // closed by Stop to release hung handlers

	checks atomic.Int64 // health Check calls received

	mu       sync.Mutex
	lastMD   metadata.MD
	deadline time.Duration // remaining deadline seen by the last unary RPC
	stopOnce sync.Once
}

// Options configure a Backend.
type Options struct {
	// ServerOptions are passed to grpc.NewServer.
	ServerOptions []grpc.ServerOption
	// NoHealth leaves the health service unregistered.
	NoHealth bool
	// Addr to listen on; default "127.0.0.1:0".
	Addr string
}

// StartBackend starts a backend. Call Stop when done.
func StartBackend(opts Options) (*Backend, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		Addr:   lis.Addr().String(),
		srv:    grpc.NewServer(opts.ServerOptions...),
		lis:    lis,
		hangCh: make(chan struct{}),
	}
	testgrpc.RegisterTestServiceServer(b.srv, b)
	if !opts.NoHealth {
		b.Health = health.NewServer()
		healthpb.RegisterHealthServer(b.srv, &healthService{b: b, HealthServer: b.Health})
	}
	go b.srv.Serve(lis)
	return b, nil
}

// Stop stops the server at once (open RPCs fail).
func (b *Backend) Stop() {
	b.stopOnce.Do(func() { close(b.hangCh) })
	b.srv.Stop()
}

// Checks returns the number of health Check calls received.
func (b *Backend) Checks() int64 { return b.checks.Load() }

// healthService is grpc's health server, except that Check hangs like the
// application RPCs while the backend is hung (a stuck process answers
// nothing, probes included).
type healthService struct {
	healthpb.HealthServer
	b *Backend
}

func (h *healthService) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.b.checks.Add(1)
	if h.b.hung.Load() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.b.hangCh:
			return nil, status.Error(codes.Unavailable, "backend stopped")
		}
	}
	return h.HealthServer.Check(ctx, in)
}

// Hits returns the number of application RPCs received.
func (b *Backend) Hits() int64 { return b.hits.Load() }

// ResetHits zeroes the counter and returns its old value.
func (b *Backend) ResetHits() int64 { return b.hits.Swap(0) }

// SetDelay makes every following RPC take at least d.
func (b *Backend) SetDelay(d time.Duration) { b.delay.Store(int64(d)) }

// SetFailure makes every following RPC fail with code c (codes.OK: succeed).
func (b *Backend) SetFailure(c codes.Code) { b.failCode.Store(uint32(c)) }

// SetHung makes every following RPC, health checks included, block until
// its caller gives up.
func (b *Backend) SetHung(h bool) { b.hung.Store(h) }

// LastMetadata returns the request metadata of the last unary RPC.
func (b *Backend) LastMetadata() metadata.MD {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastMD.Copy()
}

// LastDeadline returns the time left until the deadline of the last unary
// RPC when the server received it (0: none).
func (b *Backend) LastDeadline() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.deadline
}

// behave applies the configured delay/failure/hang to one RPC.
func (b *Backend) behave(ctx context.Context) error {
	b.hits.Add(1)
	if b.hung.Load() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.hangCh:
			return status.Error(codes.Unavailable, "backend stopped")
		}
	}
	if d := time.Duration(b.delay.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
		}
	}
	if c := codes.Code(b.failCode.Load()); c != codes.OK {
		return status.Errorf(c, "backend %s configured to fail", b.Addr)
	}
	return nil
}

// EmptyCall implements TestService.
func (b *Backend) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	if err := b.behave(ctx); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

// UnaryCall implements TestService. It records the request metadata and
// deadline, echoes metadata key "x-echo" as a header and "x-echo-trailer" as
// a trailer, and names itself in the response's Hostname.
func (b *Backend) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	b.mu.Lock()
	b.lastMD = md.Copy()
	b.deadline = 0
	if dl, ok := ctx.Deadline(); ok {
		b.deadline = time.Until(dl)
	}
	b.mu.Unlock()
	if v := md.Get("x-echo"); len(v) > 0 {
		grpc.SetHeader(ctx, metadata.Pairs("x-echo", v[0]))
	}
	if v := md.Get("x-echo-trailer"); len(v) > 0 {
		grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", v[0]))
	}
	if err := b.behave(ctx); err != nil {
		return nil, err
	}
	return &testpb.SimpleResponse{
		Payload:  &testpb.Payload{Body: make([]byte, in.GetResponseSize())},
		Hostname: b.Addr,
	}, nil
}

// StreamingOutputCall implements TestService (server streaming).
func (b *Backend) StreamingOutputCall(in *testpb.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	if err := b.behave(stream.Context()); err != nil {
		return err
	}
	for _, p := range in.GetResponseParameters() {
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall implements TestService (client streaming).
func (b *Backend) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	if err := b.behave(stream.Context()); err != nil {
		return err
	}
	var n int32
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: n})
		}
		if err != nil {
			return err
		}
		n += int32(len(m.GetPayload().GetBody()))
	}
}

// FullDuplexCall implements TestService (bidi streaming): one response per
// request, of the first requested size.
func (b *Backend) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	if err := b.behave(stream.Context()); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		size := int32(0)
		if ps := m.GetResponseParameters(); len(ps) > 0 {
			size = ps[0].GetSize()
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, size)}}); err != nil {
			return err
		}
	}
}

// Fleet is a set of backends.
type Fleet []*Backend

// StartFleet starts n backends with the same options.
func StartFleet(n int, opts Options) (Fleet, error) {
	var f Fleet
	for i := 0; i < n; i++ {
		b, err := StartBackend(opts)
		if err != nil {
			f.Stop()
			return nil, err
		}
		f = append(f, b)
	}
	return f, nil
}

// Stop stops every backend.
func (f Fleet) Stop() {
	for _, b := range f {
		b.Stop()
	}
}

// Addrs returns the backends' addresses.
func (f Fleet) Addrs() []string {
	a := make([]string, len(f))
	for i, b := range f {
		a[i] = b.Addr
	}
	return a
}

// Hits returns each backend's hit count.
func (f Fleet) Hits() []int64 {
	h := make([]int64, len(f))
	for i, b := range f {
		h[i] = b.Hits()
	}
	return h
}

// ResetHits zeroes every backend's hit count.
func (f Fleet) ResetHits() {
	for _, b := range f {
		b.ResetHits()
	}
}
