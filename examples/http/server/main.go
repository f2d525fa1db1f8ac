// Command server starts plain net/http backends on 127.0.0.1, one per port:
// GET /work answers with the backend's address after a short service time,
// GET /healthz answers 200. One backend can be slow (10x the service
// time) and one can fail every /work request with 503 while its /healthz
// stays 200: a broken dependency behind a live process.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	ports       = flag.String("ports", "8081,8082,8083,8084", "comma-separated ports to listen on, on 127.0.0.1 (0 picks a free port)")
	slow        = flag.Int("slow", 3, "which backend is 10x slower, 1-based position in -ports (0: none)")
	fail        = flag.Int("fail", 4, "which backend answers every /work with 503 (its /healthz stays 200), 1-based position in -ports (0: none)")
	serviceTime = flag.Duration("service-time", 2*time.Millisecond, "time a /work request takes on a healthy backend")
)

type backend struct {
	addr  string
	delay time.Duration
	fail  bool
	reqs  atomic.Int64
}

func (b *backend) work(w http.ResponseWriter, r *http.Request) {
	b.reqs.Add(1)
	if b.fail {
		http.Error(w, "dependency down", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-time.After(b.delay):
	case <-r.Context().Done():
		return
	}
	fmt.Fprintln(w, b.addr)
}

func healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

func main() {
	flag.Parse()
	log.SetFlags(0)
	list := strings.Split(*ports, ",")
	for name, v := range map[string]int{"slow": *slow, "fail": *fail} {
		if v < 0 || v > len(list) {
			log.Fatalf("server: %s: %d, must be in [0, %d] (a position in -ports, 0 for none)", name, v, len(list))
		}
	}

	var backends []*backend
	var servers []*http.Server
	for i, p := range list {
		port, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || port < 0 || port > 65535 {
			log.Fatalf("server: ports: %q, must be comma-separated port numbers in [0, 65535]", p)
		}
		lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			log.Fatalf("server: %v", err)
		}
		b := &backend{addr: lis.Addr().String(), delay: *serviceTime, fail: i+1 == *fail}
		kind := fmt.Sprintf("healthy, %v", b.delay)
		switch {
		case b.fail:
			kind = "failing: every /work gets 503, /healthz 200"
		case i+1 == *slow:
			b.delay *= 10
			kind = fmt.Sprintf("slow, %v", b.delay)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /work", b.work)
		mux.HandleFunc("GET /healthz", healthz)
		s := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go s.Serve(lis)
		backends = append(backends, b)
		servers = append(servers, s)
		fmt.Printf("backend %d listening on %s (%s)\n", i+1, b.addr, kind)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	last := counts(backends)
	for {
		select {
		case <-tick.C:
			if c := counts(backends); c != last {
				fmt.Println("requests served:", c)
				last = c
			}
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			for _, s := range servers {
				if s.Shutdown(ctx) != nil {
					s.Close()
				}
			}
			cancel()
			fmt.Println("stopped; requests served:", counts(backends))
			return
		}
	}
}

// counts renders "127.0.0.1:8081 571, 127.0.0.1:8082 1143, ...".
func counts(bs []*backend) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("%s %d", b.addr, b.reqs.Load())
	}
	return strings.Join(parts, ", ")
}
