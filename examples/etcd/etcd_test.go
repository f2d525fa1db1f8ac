// Package etcd_test runs the etcd example's server and client against an
// etcd server embedded in the test process.
package etcd_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	buildTimeout  = 3 * time.Minute // the machine may be busy; builds are slow then
	startTimeout  = 20 * time.Second
	clientTimeout = 60 * time.Second
)

// startEtcd runs a single-member etcd on loopback ports until the test ends
// and returns its client address.
func startEtcd(t *testing.T) string {
	t.Helper()
	cu := url.URL{Scheme: "http", Host: freeAddr(t)}
	pu := url.URL{Scheme: "http", Host: freeAddr(t)}
	cfg := embed.NewConfig()
	cfg.Name = "examples-etcd-test"
	cfg.Dir = t.TempDir()
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Close logs expected errors ("use of closed network connection").
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not become ready within 30s")
	}
	return cu.Host
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// build compiles the package at pkg (relative to this directory) into dir.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// server is a running example server.
type server struct {
	addr string
	stop func() // SIGINT, then wait (SIGKILL after 5s); idempotent

	mu  sync.Mutex
	out strings.Builder
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

var listening = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+), registered as `)

// startServer runs bin with args until it says it is registered, and stops
// it when the test ends if the test did not.
func startServer(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	s := &server{}
	ready := make(chan string, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() {
		<-readerDone // Wait must not run before the pipe is drained
		exited <- cmd.Wait()
	}()
	s.stop = sync.OnceFunc(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server exited with %v after SIGINT; output:\n%s", err, s.output())
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("server did not stop within 5s of SIGINT; output:\n%s", s.output())
		}
	})
	t.Cleanup(s.stop)
	select {
	case s.addr = <-ready:
	case err := <-exited:
		t.Fatalf("server exited early (%v); output:\n%s", err, s.output())
	case <-time.After(startTimeout):
		t.Fatalf("server not registered within %v; output:\n%s", startTimeout, s.output())
	}
	return s
}

// runClient runs bin with args to completion and returns its output and
// exit error.
func runClient(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("client did not finish within %v; output:\n%s", clientTimeout, out)
	}
	return string(out), err
}

func okLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "OK: ") {
			return l
		}
	}
	return ""
}

// TestEtcdExample registers three servers in an embedded etcd; the client
// must reach all three through fulcrum://etcd/echo. After one server stops
// (and deregisters), the client must report the two that are left. Asking
// for more instances than are registered must fail once the timeout
// expires.
func TestEtcdExample(t *testing.T) {
	ep := startEtcd(t)
	dir := t.TempDir()
	srvBin := build(t, dir, "./server")
	cliBin := build(t, dir, "./client")

	var servers []*server
	for range 3 {
		servers = append(servers, startServer(t, srvBin, "-etcd", ep, "-name", "echo"))
	}

	out, err := runClient(t, cliBin, "-etcd", ep, "-name", "echo", "-want", "3")
	if err != nil {
		t.Fatalf("client: %v; output:\n%s", err, out)
	}
	if l := okLine(out); !strings.HasPrefix(l, "OK: reached all 3 instances registered under /fulcrum/services/echo/ through fulcrum://etcd/echo") {
		t.Errorf("client printed no OK line for 3 instances; output:\n%s", out)
	}
	for _, s := range servers {
		if !strings.Contains(out, s.addr+" ") {
			t.Errorf("client output does not name server %s; output:\n%s", s.addr, out)
		}
	}

	servers[0].stop()
	if !strings.Contains(servers[0].output(), "deregistered and stopped") {
		t.Errorf("stopped server did not report deregistering; output:\n%s", servers[0].output())
	}
	out, err = runClient(t, cliBin, "-etcd", ep, "-name", "echo", "-want", "2")
	if err != nil {
		t.Fatalf("client after one server stopped: %v; output:\n%s", err, out)
	}
	if l := okLine(out); !strings.HasPrefix(l, "OK: reached all 2 instances") || strings.Contains(out, servers[0].addr) {
		t.Errorf("client after %s stopped: want OK for the 2 others and no mention of it; output:\n%s", servers[0].addr, out)
	}

	out, err = runClient(t, cliBin, "-etcd", ep, "-name", "echo", "-want", "4", "-timeout", "3s")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || okLine(out) != "" || !strings.Contains(out, "FAIL: ") {
		t.Errorf("client -want 4 with 2 registered: err %v; want exit status 1 and a FAIL line; output:\n%s", err, out)
	}
}
