package consul_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
)

// lockedBuffer collects the agent's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

// startDevAgent runs `consul agent -dev` on free loopback ports until the
// test ends and returns a client for it, once it has a leader. It skips
// the test when no consul binary is on PATH.
func startDevAgent(t *testing.T) *api.Client {
	t.Helper()
	bin, err := exec.LookPath("consul")
	if err != nil {
		t.Skip("no consul binary on PATH: install Consul (any version with `consul agent -dev`) to run this test against a real agent; the fake in consultest covers the same behaviour")
	}
	httpPort := freePort(t)
	args := []string{"agent", "-dev", "-bind=127.0.0.1", "-client=127.0.0.1",
		"-http-port=" + strconv.Itoa(httpPort), "-dns-port=-1", "-grpc-port=-1",
		"-serf-lan-port=" + strconv.Itoa(freePort(t)), "-serf-wan-port=" + strconv.Itoa(freePort(t)),
		"-server-port=" + strconv.Itoa(freePort(t)), "-node=fulcrum-test"}
	cmd := exec.Command(bin, args...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start(), "starting %s %v", bin, args)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	cfg := api.DefaultNonPooledConfig()
	cfg.Address = "127.0.0.1:" + strconv.Itoa(httpPort)
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	c, err := api.NewClient(cfg)
	require.NoError(t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if leader, err := c.Status().Leader(); err == nil && leader != "" {
			return c
		}
		select {
		case err := <-exited:
			t.Fatalf("consul agent exited early (%v); output:\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("consul agent had no leader within 30s; output:\n%s", out.String())
		}
	}
}

// TestRealAgent_RegisterWatchDeregister runs against a real
// `consul agent -dev` when one is installed: a gRPC server registered with
// Register turns passing once the agent's gRPC check succeeds and is
// reported by the source; Close deregisters it and the source reports an
// authoritative empty set.
func TestRealAgent_RegisterWatchDeregister(t *testing.T) {
	checkLeaks(t)
	c := startDevAgent(t)
	b := startBackends(t, 1)[0]
	reg, err := consul.Register(context.Background(), c, "fulcrum-real", resolver.Endpoint{Addresses: []string{b.Addr}, Weight: 2},
		consul.RegisterOptions{CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	defer reg.Close()

	src, err := consul.NewSource(c, consul.Options{Wait: 5 * time.Second})
	require.NoError(t, err)
	rec, _ := watch(t, src, "fulcrum-real")
	i := rec.waitFor(t, 30*time.Second, 0, "the instance passing", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	ep := rec.all()[i].Endpoints[0]
	require.Equal(t, []string{b.Addr}, ep.Addresses)
	require.Equal(t, uint32(2), ep.Weight)
	require.Equal(t, reg.ID(), ep.Metadata[consul.MetaID])

	require.NoError(t, reg.Close())
	rec.waitFor(t, 10*time.Second, i+1, "an authoritative empty set", func(u resolver.Update) bool {
		return u.Err == nil && len(u.Endpoints) == 0 && u.Authoritative
	})
}
