// Package consul_test runs the Consul example's server and client against
// the fake Consul of resolver/consul/consultest, in the test process.
package consul_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	buildTimeout  = 3 * time.Minute // the machine may be busy; builds are slow then
	startTimeout  = 20 * time.Second
	clientTimeout = 60 * time.Second
)

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

// TestConsulExample registers three servers with the fake agent, whose gRPC
// checks turn them passing; the client must reach all three through
// fulcrum://consul/echo. After one server stops (and deregisters), the
// client must report the two that are left. Asking for more instances than
// are passing must fail once the timeout expires.
func TestConsulExample(t *testing.T) {
	fake := consultest.NewServer(consultest.Options{})
	defer fake.Close()
	dir := t.TempDir()
	srvBin := build(t, dir, "./server")
	cliBin := build(t, dir, "./client")

	var servers []*server
	for range 3 {
		servers = append(servers, startServer(t, srvBin, "-consul", fake.Addr, "-name", "echo", "-check-interval", "1s"))
	}

	out, err := runClient(t, cliBin, "-consul", fake.Addr, "-name", "echo", "-want", "3")
	if err != nil {
		t.Fatalf("client: %v; output:\n%s", err, out)
	}
	if l := okLine(out); !strings.HasPrefix(l, "OK: reached all 3 passing instances of echo through fulcrum://consul/echo") {
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
	if n := len(fake.Instances("echo")); n != 2 {
		t.Errorf("%d instances registered after one server stopped, want 2", n)
	}
	out, err = runClient(t, cliBin, "-consul", fake.Addr, "-name", "echo", "-want", "2")
	if err != nil {
		t.Fatalf("client after one server stopped: %v; output:\n%s", err, out)
	}
	if l := okLine(out); !strings.HasPrefix(l, "OK: reached all 2 passing instances") || strings.Contains(out, servers[0].addr) {
		t.Errorf("client after %s stopped: want OK for the 2 others and no mention of it; output:\n%s", servers[0].addr, out)
	}

	out, err = runClient(t, cliBin, "-consul", fake.Addr, "-name", "echo", "-want", "4", "-timeout", "3s")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || okLine(out) != "" || !strings.Contains(out, "FAIL: ") {
		t.Errorf("client -want 4 with 2 passing: err %v; want exit status 1 and a FAIL line; output:\n%s", err, out)
	}
}
