// Package examples_test builds the examples' servers and clients and runs
// them as a user would, checking the line each client prints on success.
package examples_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
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
	out := filepath.Join(dir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "-"))
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// server is a running example server.
type server struct {
	addrs []string

	mu  sync.Mutex
	out strings.Builder // everything it printed
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

var listening = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// startServer runs bin with args, waits until it has printed n
// "listening on" lines, and stops it (SIGINT, then SIGKILL after 5s) when
// the test ends.
func startServer(t *testing.T, bin string, n int, args ...string) *server {
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
	ready := make(chan []string, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var addrs []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.mu.Lock()
			s.out.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrs = append(addrs, m[1])
				if len(addrs) == n {
					ready <- addrs
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	go func() {
		<-readerDone // Wait must not run before the pipe is drained
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("server %s exited with %v after SIGINT; output:\n%s", bin, err, s.output())
			}
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("server %s did not stop within 5s of SIGINT; output:\n%s", bin, s.output())
		}
	})
	select {
	case s.addrs = <-ready:
	case err := <-exited:
		t.Fatalf("server %s exited early (%v); output:\n%s", bin, err, s.output())
	case <-time.After(startTimeout):
		t.Fatalf("server %s: no %d listening lines within %v; output:\n%s", bin, n, startTimeout, s.output())
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
		t.Fatalf("client %s did not finish within %v; output:\n%s", bin, clientTimeout, out)
	}
	return string(out), err
}

// okLine returns the client's "OK: ..." line, or "".
func okLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "OK: ") {
			return l
		}
	}
	return ""
}

func staticTarget(addrs []string, weights ...string) string {
	entries := make([]string, len(addrs))
	for i, a := range addrs {
		entries[i] = a
		if i < len(weights) {
			entries[i] += "=" + weights[i]
		}
	}
	return "fulcrum://static/" + strings.Join(entries, ",")
}

// TestWeights runs examples/weights: three backends on free ports with
// weights 1:2:4 in the target and equal service times (10ms here, five
// times the server's default: under -race on two shared cores a 2ms RPC
// stalls to twice its time often enough for the default latency term to
// move load off an endpoint, one run measured 18/28/53 %), so that shares
// follow weights because of the policy, not because one connection is
// slower. The client must report shares within
// weightsTolerance of the weights, and must fail when no deviation is
// tolerated (1/7 of 4000 RPCs is not a whole number), which shows its check
// can fail.
func TestWeights(t *testing.T) {
	// weightsTolerance, in percentage points, is 4 standard deviations of a
	// share of n independent weighted draws at its widest (p = 1/2):
	// 100*4*sqrt(p(1-p)/n) = 3.2 points for n = 4000, so a correct policy
	// fails one share with probability < 1e-4. The policy's draws are not
	// independent (least-request steers them back toward the ideal), which
	// only narrows the spread: measured shares stay within 0.5 points.
	const n = 4000
	weightsTolerance := 100 * 4 * math.Sqrt(0.25/n)

	dir := t.TempDir()
	srvBin := build(t, dir, "./weights/server")
	cliBin := build(t, dir, "./weights/client")
	srv := startServer(t, srvBin, 3, "-ports", "0,0,0", "-service-time", "10ms")
	target := staticTarget(srv.addrs, "1", "2", "4")

	out, err := runClient(t, cliBin, "-target", target, "-n", strconv.Itoa(n),
		"-tolerance", strconv.FormatFloat(weightsTolerance, 'f', 2, 64))
	if err != nil {
		t.Fatalf("client: %v; output:\n%s", err, out)
	}
	if l := okLine(out); !strings.HasPrefix(l, "OK: shares follow weights 1:2:4 (") {
		t.Errorf("client printed no OK line for weights 1:2:4; output:\n%s", out)
	}

	out, err = runClient(t, cliBin, "-target", target, "-tolerance", "0")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || okLine(out) != "" || !strings.Contains(out, "FAIL: shares do not follow weights 1:2:4") {
		t.Errorf("client with -tolerance 0: err %v; want exit status 1 and a FAIL line; output:\n%s", err, out)
	}
}

// TestServiceConfig runs examples/serviceconfig with the second backend
// turning bad after 300 RPCs, in both modes. The client must report that
// backend as ejected with success >= 99%. Without a bad backend it must
// fail.
//
// 99% of the client's 2400 RPCs (400/s for 6s) allows 24 failures, which
// no timing can reach while ejection works: in "unavailable" mode the
// breaker opens on the 3rd consecutive failure, so the failures are those 3,
// the few RPCs already in flight to the backend then (its handlers answer
// at once), and 2 half-open trials per 5s open period; in
// "not_serving" mode RPCs keep succeeding and only probes say NOT_SERVING.
func TestServiceConfig(t *testing.T) {
	dir := t.TempDir()
	srvBin := build(t, dir, "./serviceconfig/server")
	cliBin := build(t, dir, "./serviceconfig/client")

	for _, mode := range []string{"unavailable", "not_serving"} {
		t.Run(mode, func(t *testing.T) {
			srv := startServer(t, srvBin, 3, "-ports", "0,0,0", "-fail", "2", "-mode", mode)
			out, err := runClient(t, cliBin, "-target", staticTarget(srv.addrs))
			if err != nil {
				t.Fatalf("client: %v; output:\n%s\nserver output:\n%s", err, out, srv.output())
			}
			if l := okLine(out); !strings.HasPrefix(l, "OK: "+srv.addrs[1]+" was ejected (") {
				t.Errorf("client printed no OK line naming %s as ejected; output:\n%s", srv.addrs[1], out)
			}
		})
	}

	t.Run("no_bad_backend", func(t *testing.T) {
		srv := startServer(t, srvBin, 3, "-ports", "0,0,0")
		out, err := runClient(t, cliBin, "-target", staticTarget(srv.addrs), "-duration", "3s")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(out, "FAIL: no backend was ejected") {
			t.Errorf("client: err %v; want exit status 1 and a FAIL line; output:\n%s", err, out)
		}
	})
}

// TestHTTP runs examples/http: four net/http backends on free ports, the
// fourth failing every request with 503 while its /healthz says 200. The
// client must report fulcrumhttp's success at 99% or above and the failing
// backend's share below the naive client's, naming that backend. With no
// failing backend it must fail, which shows its check can fail.
func TestHTTP(t *testing.T) {
	dir := t.TempDir()
	srvBin := build(t, dir, "./http/server")
	cliBin := build(t, dir, "./http/client")

	srv := startServer(t, srvBin, 4, "-ports", "0,0,0,0", "-slow", "3", "-fail", "4")
	out, err := runClient(t, cliBin, "-target", staticTarget(srv.addrs), "-n", "1000")
	if err != nil {
		t.Fatalf("client: %v; output:\n%s\nserver output:\n%s", err, out, srv.output())
	}
	if l := okLine(out); !strings.HasPrefix(l, "OK: fulcrumhttp ") || !strings.Contains(l, "the failing backend "+srv.addrs[3]+" got ") {
		t.Errorf("client printed no OK line naming %s as the failing backend; output:\n%s", srv.addrs[3], out)
	}

	t.Run("no_failing_backend", func(t *testing.T) {
		srv := startServer(t, srvBin, 4, "-ports", "0,0,0,0", "-fail", "0")
		out, err := runClient(t, cliBin, "-target", staticTarget(srv.addrs), "-n", "200")
		var exit *exec.ExitError
		if !errors.As(err, &exit) || okLine(out) != "" || !strings.Contains(out, "FAIL: no backend failed under the naive client") {
			t.Errorf("client: err %v; want exit status 1 and a FAIL line; output:\n%s", err, out)
		}
	})
}
