package etcd_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"

	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

// recordingSource passes reports through to the resolver and records them.
type recordingSource struct {
	resolver.Source
	rec *recorder
}

func (s recordingSource) Watch(ctx context.Context, name string, report func(resolver.Update)) (func(), func(), error) {
	return s.Source.Watch(ctx, name, func(u resolver.Update) {
		s.rec.report(u)
		report(u)
	})
}

// rpcLoop sends EmptyCall RPCs one after another until stopped, counting
// failures and the backends that served them.
type rpcLoop struct {
	cancel   context.CancelFunc
	done     chan struct{}
	sent     atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	firstErr error
	byAddr   map[string]int
}

func startRPCLoop(cc *grpc.ClientConn) *rpcLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &rpcLoop{cancel: cancel, done: make(chan struct{}), byAddr: make(map[string]int)}
	client := testgrpc.NewTestServiceClient(cc)
	go func() {
		defer close(l.done)
		// Bounded in count as well as by the test: at most ~2 minutes.
		for i := 0; i < 20000 && ctx.Err() == nil; i++ {
			var p peer.Peer
			rctx, rcancel := context.WithTimeout(ctx, defaultTestTimeout)
			_, err := client.EmptyCall(rctx, &testpb.Empty{}, grpc.Peer(&p))
			rcancel()
			if ctx.Err() != nil {
				return // the loop was stopped mid-RPC; not a failure
			}
			l.sent.Add(1)
			l.mu.Lock()
			if err != nil {
				l.failures.Add(1)
				if l.firstErr == nil {
					l.firstErr = err
				}
			} else {
				l.byAddr[p.Addr.String()]++
			}
			l.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return l
}

func (l *rpcLoop) hits(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byAddr[addr]
}

func (l *rpcLoop) stop() {
	l.cancel()
	<-l.done
}

// waitForHits waits until addr has served at least n more RPCs than it had
// when called.
func (l *rpcLoop) waitForHits(t *testing.T, addr string, n int) {
	t.Helper()
	start := l.hits(addr)
	deadline := time.Now().Add(defaultTestTimeout)
	for l.hits(addr) < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s served %d RPCs in %v, want %d", addr, l.hits(addr)-start, defaultTestTimeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEndToEnd_EtcdOutageKeepsServing dials fulcrum://etcd/user-svc with
// round_robin against real grpc servers that registered themselves in a
// real etcd. Then etcd stops: the source reports an error, and every RPC
// must still succeed on the last good set. etcd restarts on the same ports
// and data dir; a server that registers afterwards must get traffic, again
// without a failed RPC.
func TestEndToEnd_EtcdOutageKeepsServing(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	src, err := etcd.NewSource(cli, etcd.Options{ProbeInterval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	rec := newRecorder()
	resolver.RegisterSource("etcd", recordingSource{Source: src, rec: rec})

	var backends []*testutil.Backend
	for range 3 {
		b, err := testutil.StartBackend(testutil.Options{})
		require.NoError(t, err)
		t.Cleanup(b.Stop)
		backends = append(backends, b)
	}
	register := func(b *testutil.Backend) {
		t.Helper()
		reg, err := etcd.Register(context.Background(), cli, "user-svc", resolver.Endpoint{Addresses: []string{b.Addr}}, etcd.RegisterOptions{TTL: 30 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, reg.Close()) })
	}
	register(backends[0])
	register(backends[1])

	cc, err := grpc.NewClient("fulcrum://etcd/user-svc",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	require.NoError(t, err)
	defer cc.Close()
	loop := startRPCLoop(cc)
	defer loop.stop()
	loop.waitForHits(t, backends[0].Addr, 5)
	loop.waitForHits(t, backends[1].Addr, 5)

	te.stop()
	i := rec.waitForErr(t, defaultTestTimeout, 0)
	loop.waitForHits(t, backends[0].Addr, 20)
	loop.waitForHits(t, backends[1].Addr, 20)

	te.start()
	register(backends[2])
	rec.waitFor(t, defaultTestTimeout, i+1, "three endpoints", func(u resolver.Update) bool { return len(u.Endpoints) == 3 })
	loop.waitForHits(t, backends[2].Addr, 5)
	loop.waitForHits(t, backends[0].Addr, 5)
	loop.stop()

	loop.mu.Lock()
	defer loop.mu.Unlock()
	require.Zero(t, loop.failures.Load(), "%d of %d RPCs failed; first: %v", loop.failures.Load(), loop.sent.Load(), loop.firstErr)
	t.Logf("%d RPCs, all succeeded: %v", loop.sent.Load(), loop.byAddr)
}
