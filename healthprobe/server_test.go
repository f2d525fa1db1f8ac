package healthprobe_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// testServer is the real health service on 127.0.0.1 whose Check can be
// made to hang or to answer DEADLINE_EXCEEDED itself, with a log of every
// Check it saw.
type testServer struct {
	*health.Server
	addr string

	mode    atomic.Int32  // a checkMode
	release chan struct{} // closed at test end to unblock hung handlers

	mu    sync.Mutex
	calls []string // the answer to each Check, "HANG" for one that got none
	conns []net.Conn
}

type checkMode int32

const (
	answer           checkMode = iota // the health service answers
	hang                              // Check blocks until the caller gives up
	deadlineExceeded                  // Check fails DEADLINE_EXCEEDED at once
)

func (s *testServer) setMode(m checkMode) { s.mode.Store(int32(m)) }

func (s *testServer) Check(ctx context.Context, in *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch checkMode(s.mode.Load()) {
	case hang:
		s.log("HANG")
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-s.release:
			return nil, status.Error(codes.Unavailable, "server stopped")
		}
	case deadlineExceeded:
		// What a server whose own (or a downstream's) deadline fired sends,
		// long before the probe's timeout.
		s.log("DEADLINE_EXCEEDED")
		return nil, status.Error(codes.DeadlineExceeded, "deadline exceeded on the server")
	}
	resp, err := s.Server.Check(ctx, in)
	a := resp.GetStatus().String()
	if err != nil {
		a = err.Error()
	}
	s.log(a)
	return resp, err
}

func (s *testServer) log(answer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, answer)
}

// answers returns a copy of the Check log.
func (s *testServer) answers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *testServer) numCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// closeConns closes the server side of every connection accepted so far,
// while the server keeps listening: the client's SubConn leaves READY and
// can reconnect.
func (s *testServer) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// trackingListener records the connections it accepts for closeConns.
type trackingListener struct {
	net.Listener
	s *testServer
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns = append(l.s.conns, c)
		l.s.mu.Unlock()
	}
	return c, err
}

// startServer serves on 127.0.0.1:0; withHealth=false serves no health
// service at all (Check is UNIMPLEMENTED). It returns a stop function that
// tests may call early; cleanup calls it too.
func startServer(t *testing.T, withHealth bool) (*testServer, func()) {
	t.Helper()
	// Registered first, so it runs last: the next test must not see this
	// test's probe loops when it counts them.
	t.Cleanup(func() {
		waitFor(t, "every probe loop to exit", func() bool { return probeGoroutines() == 0 })
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts := &testServer{Server: health.NewServer(), addr: lis.Addr().String(), release: make(chan struct{})}
	var s *grpc.Server
	if withHealth {
		s = grpc.NewServer()
		healthpb.RegisterHealthServer(s, ts)
	} else {
		// No service to log calls in: a stats handler sees them.
		s = grpc.NewServer(grpc.StatsHandler(unimplementedLogger{ts}))
	}
	served := make(chan struct{})
	go func() { s.Serve(trackingListener{lis, ts}); close(served) }()
	stop := sync.OnceFunc(func() {
		close(ts.release)
		s.Stop()
		<-served
	})
	t.Cleanup(stop)
	return ts, stop
}

// unimplementedLogger logs the Check calls of a server without the health
// service, which answers them UNIMPLEMENTED.
type unimplementedLogger struct{ ts *testServer }

func (u unimplementedLogger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}

func (u unimplementedLogger) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InHeader); ok && in.FullMethod == healthpb.Health_Check_FullMethodName {
		u.ts.log("UNIMPLEMENTED")
	}
}

func (u unimplementedLogger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (u unimplementedLogger) HandleConn(context.Context, stats.ConnStats) {}
