// Command server starts TestService backends on 127.0.0.1, one per port,
// that name themselves in every response and count the RPCs they serve.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

var (
	ports = flag.String("ports", "50051,50052,50053", "comma-separated ports to listen on, on 127.0.0.1 (0 picks a free port)")
	// Equal backends need equal service times. With handlers that take no
	// time, the servers and the client share the machine's cores and the
	// connection carrying 57 % of the RPCs really is the slowest, so a
	// load-aware policy rightly moves traffic off it.
	serviceTime = flag.Duration("service-time", 2*time.Millisecond, "time each RPC takes, the same on every backend")
)

// backend answers UnaryCall with its own address in Hostname, which is how
// the client tells the backends apart.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	addr string
	rpcs atomic.Int64
}

func (b *backend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.rpcs.Add(1)
	time.Sleep(*serviceTime)
	return &testpb.SimpleResponse{Hostname: b.addr}, nil
}

func main() {
	flag.Parse()
	log.SetFlags(0)

	var backends []*backend
	var servers []*grpc.Server
	for i, p := range strings.Split(*ports, ",") {
		port, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || port < 0 || port > 65535 {
			log.Fatalf("server: ports: %q, must be comma-separated port numbers in [0, 65535]", p)
		}
		lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			log.Fatalf("server: %v", err)
		}
		b := &backend{addr: lis.Addr().String()}
		s := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(s, b)
		healthpb.RegisterHealthServer(s, health.NewServer()) // SERVING
		go s.Serve(lis)
		backends = append(backends, b)
		servers = append(servers, s)
		fmt.Printf("backend %d listening on %s\n", i+1, b.addr)
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
				fmt.Println("RPCs served:", c)
				last = c
			}
		case <-stop:
			for _, s := range servers {
				stopWithin(s, 2*time.Second)
			}
			fmt.Println("stopped; RPCs served:", counts(backends))
			return
		}
	}
}

// counts renders "127.0.0.1:50051 571, 127.0.0.1:50052 1143, ...".
func counts(bs []*backend) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("%s %d", b.addr, b.rpcs.Load())
	}
	return strings.Join(parts, ", ")
}

// stopWithin stops s gracefully, or at once if in-flight RPCs or open
// streams hold it up for longer than d.
func stopWithin(s *grpc.Server, d time.Duration) {
	t := time.AfterFunc(d, s.Stop)
	s.GracefulStop()
	t.Stop()
}
