package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/grpclog"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

// defaultTestTimeout bounds every wait. Tests poll for what they expect
// and never assert how fast it came: the machine is shared.
const defaultTestTimeout = 10 * time.Second

func TestMain(m *testing.M) {
	grpclog.SetLoggerV2(logs)
	goleak.VerifyTestMain(m)
}

// logs counts the log lines of this process (and discards them): some
// things a test must wait for, like a failed probe that is deliberately not
// reported, are visible only there.
var logs = &logCounter{}

type logCounter struct {
	mu    sync.Mutex
	lines []string
}

func (l *logCounter) add(args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprint(args...))
	l.mu.Unlock()
}

// count returns how many lines logged so far contain substr.
func (l *logCounter) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// waitFor polls until at least n lines containing substr were logged.
func (l *logCounter) waitFor(t *testing.T, substr string, n int) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for l.count(substr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d log lines containing %q after %v, want %d", l.count(substr), substr, defaultTestTimeout, n)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a synchronisation
	}
}

func (l *logCounter) Info(args ...any)                    { l.add(args...) }
func (l *logCounter) Infoln(args ...any)                  { l.add(args...) }
func (l *logCounter) Infof(format string, args ...any)    { l.add(fmt.Sprintf(format, args...)) }
func (l *logCounter) Warning(args ...any)                 { l.add(args...) }
func (l *logCounter) Warningln(args ...any)               { l.add(args...) }
func (l *logCounter) Warningf(format string, args ...any) { l.add(fmt.Sprintf(format, args...)) }
func (l *logCounter) Error(args ...any)                   { l.add(args...) }
func (l *logCounter) Errorln(args ...any)                 { l.add(args...) }
func (l *logCounter) Errorf(format string, args ...any)   { l.add(fmt.Sprintf(format, args...)) }
func (l *logCounter) Fatal(args ...any)                   { panic(fmt.Sprint(args...)) }
func (l *logCounter) Fatalln(args ...any)                 { panic(fmt.Sprint(args...)) }
func (l *logCounter) Fatalf(format string, args ...any)   { panic(fmt.Sprintf(format, args...)) }
func (l *logCounter) V(int) bool                          { return false }

// checkLeaks verifies at the end of t that every goroutine started during
// t is gone. Call it first so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// testEtcd is a single-member etcd server in this process, on loopback
// ports that stay the same across stop and start, as does its data dir.
type testEtcd struct {
	t         *testing.T
	dir       string
	clientURL url.URL
	peerURL   url.URL
	e         *embed.Etcd
}

func startEtcd(t *testing.T) *testEtcd {
	t.Helper()
	te := &testEtcd{
		t:         t,
		dir:       t.TempDir(),
		clientURL: url.URL{Scheme: "http", Host: freeAddr(t)},
		peerURL:   url.URL{Scheme: "http", Host: freeAddr(t)},
	}
	te.start()
	t.Cleanup(te.stop)
	return te
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

func (te *testEtcd) endpoint() string { return te.clientURL.Host }

func (te *testEtcd) start() {
	te.t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "fulcrum-test"
	cfg.Dir = te.dir
	cfg.ListenClientUrls = []url.URL{te.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{te.clientURL}
	cfg.ListenPeerUrls = []url.URL{te.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{te.peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	// Close logs expected errors ("use of closed network connection").
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		te.t.Fatalf("starting etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		te.t.Fatal("etcd did not become ready within 30s")
	}
	te.e = e
}

func (te *testEtcd) stop() {
	if te.e != nil {
		te.e.Close()
		te.e = nil
	}
}

// newClient returns an etcd client of endpoint that reconnects quickly,
// so that tests which stop etcd need not wait for grpc's default backoff.
func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 300 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// put writes key=val, retrying while etcd is coming back up.
func put(t *testing.T, cli *clientv3.Client, key, val string, opts ...clientv3.OpOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if _, err := cli.Put(ctx, key, val, opts...); err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
}

func del(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

// recorder collects what a Source reports.
type recorder struct {
	mu      sync.Mutex
	updates []resolver.Update
	stopped bool // set after stop returned; a report then is a bug
	lateErr error
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) report(u resolver.Update) {
	r.mu.Lock()
	if r.stopped {
		r.lateErr = errors.New("report called after stop returned")
	}
	r.updates = append(r.updates, u)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []resolver.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

// waitFor waits up to d for an update (at index >= from) that satisfies
// ok, and returns its index.
func (r *recorder) waitFor(t *testing.T, d time.Duration, from int, what string, ok func(resolver.Update) bool) int {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		us := r.all()
		for i := from; i < len(us); i++ {
			if ok(us[i]) {
				return i
			}
		}
		select {
		case <-r.changed:
		case <-timer.C:
			t.Fatalf("no update with %s within %v; got %s", what, d, describe(us[min(from, len(us)):]))
		}
	}
}

// waitForAddrs waits for a good update whose endpoints' first addresses
// are want (in key order).
func (r *recorder) waitForAddrs(t *testing.T, d time.Duration, from int, want ...string) int {
	t.Helper()
	return r.waitFor(t, d, from, "addresses "+describeAddrs(want), func(u resolver.Update) bool {
		return u.Err == nil && slices.Equal(firstAddrs(u), want)
	})
}

func (r *recorder) waitForErr(t *testing.T, d time.Duration, from int) int {
	t.Helper()
	return r.waitFor(t, d, from, "an error", func(u resolver.Update) bool { return u.Err != nil })
}

// watch starts src's watch of name with a recorder, and stops it at the
// end of the test (checking that nothing is reported after stop).
func watch(t *testing.T, src resolver.Source, name string) (*recorder, func()) {
	t.Helper()
	rec := newRecorder()
	_, stop, err := src.Watch(context.Background(), name, rec.report)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
	stopAndCheck := sync.OnceFunc(func() {
		stop()
		rec.mu.Lock()
		rec.stopped = true
		rec.mu.Unlock()
	})
	t.Cleanup(func() {
		stopAndCheck()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.lateErr != nil {
			t.Error(rec.lateErr)
		}
	})
	return rec, stopAndCheck
}

func firstAddrs(u resolver.Update) []string {
	var as []string
	for _, ep := range u.Endpoints {
		as = append(as, ep.Addresses[0])
	}
	return as
}

func describeAddrs(as []string) string {
	if len(as) == 0 {
		return "[]"
	}
	return "[" + strings.Join(as, ",") + "]"
}

func describe(us []resolver.Update) string {
	s := ""
	for _, u := range us {
		if u.Err != nil {
			s += " err(" + u.Err.Error() + ")"
			continue
		}
		s += " " + describeAddrs(firstAddrs(u))
		if u.Authoritative {
			s += "!"
		}
	}
	if s == "" {
		return "nothing"
	}
	return s
}

// proxy forwards TCP connections to an address until it is blocked; while
// blocked it cuts every connection, so a client sees its server as down.
type proxy struct {
	lis    net.Listener
	target string

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(u, c)
		go pipe(c, u)
	}
}

func (p *proxy) setBlocked(b bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = b
	if b {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *proxy) close() {
	p.lis.Close()
	p.setBlocked(true)
	p.wg.Wait()
}
