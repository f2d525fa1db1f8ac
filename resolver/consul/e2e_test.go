package consul_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	_ "github.com/fulcrum-lb/fulcrum" // weighted_least_request and fulcrum://
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// Slow start off: these tests measure discovery, not the ramp.
const serviceConfig = `{"loadBalancingConfig":[{"weighted_least_request":{"slowStart":{"window":"0s"}}}]}`

// rpcLoop sends EmptyCall RPCs one after another until stopped, counting
// them and the failures.
type rpcLoop struct {
	cancel   context.CancelFunc
	done     chan struct{}
	sent     atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func startRPCLoop(cc *grpc.ClientConn) *rpcLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &rpcLoop{cancel: cancel, done: make(chan struct{})}
	client := testgrpc.NewTestServiceClient(cc)
	go func() {
		defer close(l.done)
		// Bounded in count as well as by the test.
		for i := 0; i < 20000 && ctx.Err() == nil; i++ {
			rctx, rcancel := context.WithTimeout(ctx, defaultTestTimeout)
			_, err := client.EmptyCall(rctx, &testpb.Empty{})
			rcancel()
			if ctx.Err() != nil {
				return // stopped mid-RPC; not a failure
			}
			l.sent.Add(1)
			if err != nil {
				l.failures.Add(1)
				l.mu.Lock()
				if l.firstErr == nil {
					l.firstErr = err
				}
				l.mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return l
}

func (l *rpcLoop) stop() {
	l.cancel()
	<-l.done
}

func (l *rpcLoop) requireNoFailure(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Zero(t, l.failures.Load(), "%d of %d RPCs failed; first: %v", l.failures.Load(), l.sent.Load(), l.firstErr)
}

// waitForHits waits until b has served n more RPCs than it had when called
// and returns how long that took.
func waitForHits(t *testing.T, b *testutil.Backend, n int64, timeout time.Duration) time.Duration {
	t.Helper()
	start, from := time.Now(), b.Hits()
	for b.Hits() < from+n {
		if time.Since(start) > timeout {
			t.Fatalf("%s served %d RPCs in %v, want %d", b.Addr, b.Hits()-from, timeout, n)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func startBackends(t *testing.T, n int) []*testutil.Backend {
	t.Helper()
	var bs []*testutil.Backend
	for range n {
		b, err := testutil.StartBackend(testutil.Options{})
		require.NoError(t, err)
		t.Cleanup(b.Stop)
		bs = append(bs, b)
	}
	return bs
}

// instance is the catalog entry of b.
func instance(t *testing.T, id string, b *testutil.Backend) consultest.Instance {
	t.Helper()
	host, port, err := net.SplitHostPort(b.Addr)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	return consultest.Instance{ID: id, Service: "echo", Address: host, Port: p}
}

func dial(t *testing.T, c *api.Client, opts consul.Options) *grpc.ClientConn {
	t.Helper()
	src, err := consul.NewSource(c, opts)
	require.NoError(t, err)
	resolver.RegisterSource("consul", src)
	cc, err := grpc.NewClient("fulcrum://consul/echo",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestEndToEnd_UpdatesReachRPCsWithinASecond: real gRPC servers found
// through fulcrum://consul/echo with the default options and the
// weighted_least_request policy. A newly registered instance serves RPCs,
// and an instance whose check fails stops getting them, within a second
// of the change in Consul.
func TestEndToEnd_UpdatesReachRPCsWithinASecond(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	bs := startBackends(t, 3)
	s.Register(instance(t, "b0", bs[0]))
	s.Register(instance(t, "b1", bs[1]))
	cc := dial(t, c, consul.Options{})
	loop := startRPCLoop(cc)
	defer loop.stop()
	waitForHits(t, bs[0], 5, defaultTestTimeout)
	waitForHits(t, bs[1], 5, defaultTestTimeout)
	require.Zero(t, bs[2].Hits())

	time.Sleep(300 * time.Millisecond) // the watch is blocked on its index
	s.Register(instance(t, "b2", bs[2]))
	took := waitForHits(t, bs[2], 1, changeDeadline)
	t.Logf("new instance served its first RPC %v after its registration", took)

	s.SetStatus("b0", api.HealthCritical)
	changed := time.Now()
	time.Sleep(changeDeadline)
	before := bs[0].Hits()
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, before, bs[0].Hits(), "the failing instance still got RPCs more than %v after its check failed", changeDeadline)
	waitForHits(t, bs[1], 5, defaultTestTimeout)
	t.Logf("checked %v after the check failed", time.Since(changed))
	loop.stop()
	loop.requireNoFailure(t)
}

// TestEndToEnd_OutageKeepsServing: while Consul fails in every way it can
// for an outage several times longer than Wait + BackoffMax (5xx, empty
// answers from a server without a leader, every instance critical, answers
// slower than the query timeout), every RPC succeeds on the last known good
// set and the request rate stays within the back-off bound; afterwards a
// new instance is picked up.
func TestEndToEnd_OutageKeepsServing(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	bs := startBackends(t, 4)
	for i, b := range bs[:3] {
		s.Register(instance(t, "b"+strconv.Itoa(i), b))
	}
	opts := consul.Options{Wait: 200 * time.Millisecond, Timeout: 50 * time.Millisecond, BackoffMin: 50 * time.Millisecond, BackoffMax: 300 * time.Millisecond, MinInterval: 20 * time.Millisecond}
	cc := dial(t, c, opts)
	loop := startRPCLoop(cc)
	defer loop.stop()
	for _, b := range bs[:3] {
		waitForHits(t, b, 5, defaultTestTimeout)
	}

	// 4 phases of 750ms: 3s, 6x (Wait + BackoffMax).
	const phase = 750 * time.Millisecond
	n0 := len(s.Requests())
	start := time.Now()
	s.SetFailure(500, "No cluster leader")
	time.Sleep(phase)
	s.SetFailure(0, "")
	s.SetKnownLeader(false)
	s.SetEmptyAnswers(true)
	s.Touch("echo")
	time.Sleep(phase)
	s.SetKnownLeader(true)
	s.SetEmptyAnswers(false)
	for i := range 3 {
		s.SetStatus("b"+strconv.Itoa(i), api.HealthCritical)
	}
	time.Sleep(phase)
	s.SetDelay(time.Second)
	time.Sleep(phase)
	outage := time.Since(start)
	for _, b := range bs[:3] {
		waitForHits(t, b, 5, defaultTestTimeout) // still serving, all three
	}
	n := len(s.Requests()) - n0

	s.SetDelay(0)
	for i := range 3 {
		s.SetStatus("b"+strconv.Itoa(i), api.HealthPassing)
	}
	s.Register(instance(t, "b3", bs[3]))
	waitForHits(t, bs[3], 5, defaultTestTimeout)
	loop.stop()
	loop.requireNoFailure(t)

	// Failing phases pace queries by the back-off (>= BackoffMin/2, then
	// BackoffMax/2 once capped), answers that prove nothing by Wait (they
	// block) or MinInterval; together about 25 in 3s. The bound, one query
	// per BackoffMin, leaves room for a loaded machine; a client without
	// back-off or rate limit sends thousands.
	bound := int(outage/opts.BackoffMin) + 4
	require.LessOrEqual(t, n, bound, "%d Consul queries during a %v outage", n, outage)
	t.Logf("%d RPCs, all succeeded; %d Consul queries during a %v outage (bound %d)", loop.sent.Load(), n, outage, bound)
}
