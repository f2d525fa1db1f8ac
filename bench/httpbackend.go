package bench

import (
	"context"
	"errors"
	"io"
	"math"
	rand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// httpBackend is a real net/http server on 127.0.0.1 serving the HTTP
// scenarios' request (GET /work) and a health endpoint (GET /healthz),
// whose behaviour the scenario changes while it runs: slower, failing
// every request with a status at once, hung (requests and /healthz are
// accepted and never answered), killed and restarted on the same port.
// It counts the /work requests it received (the server-side shares).
type httpBackend struct {
	// Read-only after newHTTPBackend.
	id   int
	addr string
	base time.Duration // fixed part of the service time
	jit  time.Duration // mean of the exponential part of the service time
	stop chan struct{} // closed by close(): releases hung and waiting handlers

	hits       atomic.Int64
	slowX      atomic.Uint64 // math.Float64bits of the latency multiplier
	failStatus atomic.Int32  // non-zero: every /work request gets this status at once
	hung       atomic.Bool   // /work and /healthz block until the client gives up
	limitEvery atomic.Int64  // n > 0: every n-th /work request gets 429 with Retry-After: 2
	// posts records the X-Req-Id of every POST /work of the run (shared
	// by the fleet), to count POSTs received more than once.
	posts atomic.Pointer[postLog]

	mu      sync.Mutex
	srv     *http.Server // nil while killed
	closed  bool
	serveWG sync.WaitGroup // Serve goroutines
}

func newHTTPBackend(id int, o backendOptions) (*httpBackend, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &httpBackend{
		id:   id,
		addr: lis.Addr().String(),
		base: o.base,
		jit:  o.jitter,
		stop: make(chan struct{}),
	}
	b.slowX.Store(math.Float64bits(1))
	b.serve(lis)
	return b, nil
}

func (b *httpBackend) serve(lis net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work", b.work)
	mux.HandleFunc("POST /work", b.work)
	mux.HandleFunc("GET /healthz", b.healthz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	b.serveWG.Add(1)
	go func() {
		defer b.serveWG.Done()
		_ = srv.Serve(lis)
	}()
}

// kill stops the server at once: the listener and every connection
// close, requests in progress fail, new ones are refused.
func (b *httpBackend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// stop closes the listener (new connections are refused) and the idle
// connections, and lets requests in progress finish: an instance taken
// down, as opposed to one that crashes (kill). It does not wait for them.
func (b *httpBackend) stopServing() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		b.serveWG.Go(func() { _ = srv.Shutdown(context.Background()) }) // close waits for it
	}
}

// restart serves again on the same port. Go's listeners set SO_REUSEADDR,
// so the port is free again as soon as the old listener is closed.
func (b *httpBackend) restart() error {
	b.mu.Lock()
	if b.srv != nil || b.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	var lis net.Listener
	var err error
	for range 50 { // bounded: 50 x 20ms
		if lis, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	b.serve(lis)
	return nil
}

// close stops the server and releases hung handlers; it returns once the
// Serve goroutines have ended.
func (b *httpBackend) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.kill()
	b.serveWG.Wait()
}

func (b *httpBackend) setSlow(x float64) { b.slowX.Store(math.Float64bits(x)) }

// hang blocks until the client goes away or the backend closes: the
// request was read but is never answered.
func (b *httpBackend) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-b.stop:
	}
}

func (b *httpBackend) work(w http.ResponseWriter, r *http.Request) {
	n := b.hits.Add(1)
	if r.Method == http.MethodPost {
		_, _ = io.Copy(io.Discard, r.Body)
		if l := b.posts.Load(); l != nil {
			l.seen(r.Header.Get("X-Req-Id"))
		}
	}
	if b.hung.Load() {
		b.hang(r.Context())
		return
	}
	if s := b.failStatus.Load(); s != 0 {
		http.Error(w, "backend configured to fail", int(s))
		return
	}
	if k := b.limitEvery.Load(); k > 0 && n%k == 0 {
		w.Header().Set("Retry-After", "2")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	d := float64(b.base)
	if b.jit > 0 {
		d += rand.ExpFloat64() * float64(b.jit)
	}
	d *= math.Float64frombits(b.slowX.Load())
	if err := b.wait(r.Context(), time.Duration(d)); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

func (b *httpBackend) healthz(w http.ResponseWriter, r *http.Request) {
	if b.hung.Load() {
		b.hang(r.Context())
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

var errBackendClosed = errors.New("backend closed")

// postLog counts the POSTs of one run by X-Req-Id.
type postLog struct {
	mu    sync.Mutex
	ids   map[string]int
	dups  int64
	total int64
}

func (l *postLog) seen(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids == nil {
		l.ids = map[string]int{}
	}
	l.total++
	if l.ids[id]++; l.ids[id] > 1 {
		l.dups++
	}
}

func (l *postLog) duplicates() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dups
}

// wait blocks for d or until ctx ends or the backend closes.
func (b *httpBackend) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return errBackendClosed
	}
}
