package xdsexample_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	buildTimeout = 3 * time.Minute // the machine may be busy; builds are slow then
	runTimeout   = 60 * time.Second
)

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

// process is a running command whose output is collected.
type process struct {
	mu   sync.Mutex
	out  strings.Builder
	line chan string
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs bin until the test ends (SIGINT, then SIGKILL after 5s).
func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{line: make(chan string, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		t := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
		<-done
		cmd.Wait()
		t.Stop()
	})
	return p
}

// waitFor returns the submatches of the first n lines matching re.
func (p *process) waitFor(t *testing.T, re *regexp.Regexp, n int) [][]string {
	t.Helper()
	var got [][]string
	timeout := time.After(runTimeout)
	for len(got) < n {
		select {
		case l := <-p.line:
			if m := re.FindStringSubmatch(l); m != nil {
				got = append(got, m)
			}
		case <-timeout:
			t.Fatalf("no %d lines matching %q within %v; output:\n%s", n, re, runTimeout, p.output())
		}
	}
	return got
}

var (
	listening = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	bootstrap = regexp.MustCompile(`^bootstrap written to (.+)$`)
	nack      = regexp.MustCompile(`^NACK from fulcrum-example for type.googleapis.com/envoy.config.cluster.v3.Cluster: (.*)$`)
)

// TestExample runs examples/xds as its README does: backends with EDS
// weights 1:2:4, the control plane serving cluster.json, the client with
// GRPC_XDS_BOOTSTRAP. The client must report shares that follow the
// weights. With a bad Fulcrum config in the cluster, the client must fail
// and the control plane must print the NACK with Fulcrum's error text.
func TestExample(t *testing.T) {
	dir := t.TempDir()
	srvBin := build(t, dir, "github.com/fulcrum-lb/fulcrum/examples/weights/server")
	cpBin := build(t, dir, "./controlplane")
	cliBin := build(t, dir, "./client")

	// One RPC at a time and the latency term off, so that shares depend on
	// the weights alone and not on how a busy machine slows the backends
	// down (the load- and latency-aware parts of the policy would rightly
	// react to that). 4000 RPCs: 3 points are 3.8 standard deviations of
	// the 4/7 share.
	srv := start(t, srvBin, "-ports", "0,0,0", "-service-time", "0")
	var eps []string
	for i, m := range srv.waitFor(t, listening, 3) {
		eps = append(eps, m[1]+"="+[]string{"1", "2", "4"}[i])
	}
	backends := strings.Join(eps, ",")

	runClient := func(t *testing.T, bootstrapFile string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, cliBin, append([]string{"-expect", backends}, args...)...)
		cmd.Env = append(os.Environ(), "GRPC_XDS_BOOTSTRAP="+bootstrapFile)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("weights", func(t *testing.T) {
		cp := start(t, cpBin, "-port", "0", "-backends", backends, "-bootstrap", filepath.Join(dir, "bs1.json"),
			"-fulcrum-config", `{"latencyAware": false}`)
		bs := cp.waitFor(t, bootstrap, 1)[0][1]
		out, err := runClient(t, bs, "-concurrency", "1")
		if err != nil || !strings.Contains(out, "OK: shares follow EDS weights 1:2:4 (") {
			t.Errorf("client: %v; want an OK line for weights 1:2:4; output:\n%s\ncontrol plane:\n%s", err, out, cp.output())
		}
		t.Logf("client output:\n%s", out)
	})

	t.Run("nack", func(t *testing.T) {
		cp := start(t, cpBin, "-port", "0", "-backends", backends, "-bootstrap", filepath.Join(dir, "bs2.json"),
			"-fulcrum-config", `{"choiceCount": 1}`)
		bs := cp.waitFor(t, bootstrap, 1)[0][1]
		const want = "weighted_least_request: choiceCount: 1, must be >= 2"
		out, err := runClient(t, bs, "-timeout", "3s")
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("client: %v; want a failure showing %q; output:\n%s", err, want, out)
		}
		msg := cp.waitFor(t, nack, 1)[0][1]
		if !strings.Contains(msg, want) {
			t.Errorf("NACK %q, want it to contain %q", msg, want)
		}
		t.Logf("control plane: NACK ... %s", msg)
	})
}
