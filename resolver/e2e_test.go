package resolver_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
)

const (
	defaultTestTimeout = 10 * time.Second
	roundRobinConfig   = `{"loadBalancingConfig":[{"round_robin":{}}]}`
)

// backend is a real gRPC server on 127.0.0.1 that counts the RPCs it served.
type backend struct {
	healthgrpc.UnimplementedHealthServer
	addr string
	hits atomic.Int64
}

func (b *backend) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	b.hits.Add(1)
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func startBackends(t *testing.T, n int) []*backend {
	t.Helper()
	var bs []*backend
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		b := &backend{addr: lis.Addr().String()}
		s := grpc.NewServer()
		healthgrpc.RegisterHealthServer(s, b)
		go s.Serve(lis)
		t.Cleanup(s.Stop)
		bs = append(bs, b)
	}
	return bs
}

func dial(t *testing.T, target string) healthgrpc.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(roundRobinConfig))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return healthgrpc.NewHealthClient(cc)
}

func call(c healthgrpc.HealthClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// waitFor sends RPCs (bounded in count and time) until cond holds.
func waitFor(t *testing.T, c healthgrpc.HealthClient, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
		if cond() {
			return
		}
		if c != nil {
			require.NoError(t, call(c))
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	require.True(t, cond(), "timed out waiting for %s", what)
}

func allHit(bs ...*backend) func() bool {
	return func() bool {
		for _, b := range bs {
			if b.hits.Load() == 0 {
				return false
			}
		}
		return true
	}
}

func addrs(bs ...*backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.addr)
	}
	return out
}

func TestStatic_RoundRobinReachesAllServers(t *testing.T) {
	bs := startBackends(t, 3)
	c := dial(t, "fulcrum://static/"+strings.Join(addrs(bs...), ","))
	waitFor(t, c, "every backend to serve an RPC", allHit(bs...))
}

func TestDNS_ReachesLocalhostServer(t *testing.T) {
	bs := startBackends(t, 1)
	_, port, _ := net.SplitHostPort(bs[0].addr)
	c := dial(t, "fulcrum://dns/localhost:"+port)
	require.NoError(t, call(c))
	assert.Equal(t, int64(1), bs[0].hits.Load())
}

// rpcLoop sends RPCs one after another (at most 20000, at most 60s) until
// stopped and counts failures.
type rpcLoop struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	sent     atomic.Int64
	failures atomic.Int64
	firstErr atomic.Value
}

func startRPCLoop(c healthgrpc.HealthClient) *rpcLoop {
	l := &rpcLoop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if err := call(c); err != nil {
				l.failures.Add(1)
				l.firstErr.CompareAndSwap(nil, err)
			}
			l.sent.Add(1)
			time.Sleep(time.Millisecond) // pacing only: the machine is shared
		}
	}()
	return l
}

func (l *rpcLoop) finish() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

func endpointsJSON(bs ...*backend) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf(`{"addresses":[%q]}`, b.addr))
	}
	return `{"endpoints":[` + strings.Join(parts, ",") + `]}`
}

// TestFile_FollowsEditsWithoutFailedRPCs runs a steady stream of RPCs through
// fulcrum://file while the file is replaced atomically, then caught
// half-written, then completed in place. Traffic must move to each new set
// and leave the old one, the half-written file must change nothing, and no
// RPC may fail.
func TestFile_FollowsEditsWithoutFailedRPCs(t *testing.T) {
	bs := startBackends(t, 4)
	a, b, c, d := bs[0], bs[1], bs[2], bs[3]
	path := filepath.Join(t.TempDir(), "endpoints.json")
	writeAtomic := func(content string) {
		require.NoError(t, os.WriteFile(path+".tmp", []byte(content), 0o644))
		require.NoError(t, os.Rename(path+".tmp", path))
	}
	writeAtomic(endpointsJSON(a, b))

	// fulcrum://file/ + an absolute path: note the double slash.
	client := dial(t, "fulcrum://file/"+path+"?interval=20ms")
	loop := startRPCLoop(client)
	defer loop.finish()

	waitFor(t, nil, "a and b to serve", allHit(a, b))

	// Atomic replacement: c and d take over, a and b see nothing more.
	writeAtomic(endpointsJSON(c, d))
	waitFor(t, nil, "c and d to serve", allHit(c, d))
	aHits, bHits := a.hits.Load(), b.hits.Load()
	cHits := c.hits.Load()
	waitFor(t, nil, "more traffic on c", func() bool { return c.hits.Load() >= cHits+20 })
	assert.Equal(t, aHits, a.hits.Load(), "a still receives RPCs after it left the file")
	assert.Equal(t, bHits, b.hits.Load(), "b still receives RPCs after it left the file")

	// Half-written in place: the previous set (c, d) stays. Wait at least
	// 10 poll intervals and 50 RPCs so the source has read it.
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["`+a.addr+`"]},{"addr`), 0o644))
	since, cdHits := time.Now(), c.hits.Load()+d.hits.Load()
	waitFor(t, nil, "traffic while the file is half-written", func() bool {
		return time.Since(since) > 200*time.Millisecond && c.hits.Load()+d.hits.Load() >= cdHits+50
	})
	assert.Equal(t, aHits, a.hits.Load(), "a half-written file changed the set")

	// The writer completes the file: only a remains.
	require.NoError(t, os.WriteFile(path, []byte(endpointsJSON(a)), 0o644))
	waitFor(t, nil, "a to serve again", func() bool { return a.hits.Load() > aHits })
	cHits, dHits := c.hits.Load(), d.hits.Load()
	aHits = a.hits.Load()
	waitFor(t, nil, "more traffic on a", func() bool { return a.hits.Load() >= aHits+20 })
	assert.Equal(t, cHits, c.hits.Load(), "c still receives RPCs")
	assert.Equal(t, dHits, d.hits.Load(), "d still receives RPCs")

	loop.finish()
	assert.Zero(t, loop.failures.Load(), "failed RPCs, first: %v", loop.firstErr.Load())
	assert.Greater(t, loop.sent.Load(), int64(100))
}

// e2eSource is a user-registered Source that the test drives, standing in
// for a user's registry client.
type e2eSource struct {
	mu     sync.Mutex
	report func(fresolver.Update)
	ready  chan struct{}
}

func (s *e2eSource) Watch(_ context.Context, _ string, report func(fresolver.Update)) (func(), func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report = report
	close(s.ready)
	return func() {}, func() {}, nil
}

func (s *e2eSource) send(u fresolver.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report(u)
}

// A user Source fails after a good set: RPCs keep flowing to that set. An
// empty set without Authoritative changes nothing either; an authoritative
// empty set does empty the channel and RPCs fail with UNAVAILABLE.
func TestUserSource_LastKnownGoodAndEmptySetRule(t *testing.T) {
	bs := startBackends(t, 2)
	src := &e2eSource{ready: make(chan struct{})}
	fresolver.RegisterSource("e2e-lkg", src)
	client := dial(t, "fulcrum://e2e-lkg/my-service")

	// Kick the channel out of idle so that the resolver is built.
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	kicked := make(chan error, 1)
	go func() {
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		kicked <- err
	}()
	select {
	case <-src.ready:
	case <-ctx.Done():
		t.Fatal("the source was never watched")
	}
	src.send(fresolver.Update{Endpoints: []fresolver.Endpoint{{Addresses: []string{bs[0].addr}}, {Addresses: []string{bs[1].addr}}}})
	require.NoError(t, <-kicked)
	waitFor(t, client, "both backends to serve", allHit(bs...))

	src.send(fresolver.Update{Err: fmt.Errorf("registry unreachable")})
	src.send(fresolver.Update{})
	before := bs[0].hits.Load() + bs[1].hits.Load()
	for range 50 {
		require.NoError(t, call(client))
	}
	assert.Equal(t, before+50, bs[0].hits.Load()+bs[1].hits.Load())

	src.send(fresolver.Update{Authoritative: true})
	deadline := time.Now().Add(defaultTestTimeout)
	var err error
	for time.Now().Before(deadline) {
		if err = call(client); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.Error(t, err, "an authoritative empty set must empty the channel")
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}
