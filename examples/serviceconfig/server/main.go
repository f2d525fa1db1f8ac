// Command server starts TestService backends on 127.0.0.1, one per port,
// and can make one of them turn bad after a number of RPCs: fail every RPC
// with UNAVAILABLE, or report NOT_SERVING to health checks.
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

var (
	ports     = flag.String("ports", "50061,50062,50063", "comma-separated ports to listen on, on 127.0.0.1 (0 picks a free port)")
	fail      = flag.Int("fail", 0, "which backend turns bad, 1-based position in -ports (0: none)")
	mode      = flag.String("mode", "unavailable", "how it turns bad: unavailable (every RPC fails, health stays SERVING) or not_serving (health checks say NOT_SERVING, RPCs still succeed)")
	failAfter = flag.Int64("fail-after", 300, "the bad backend turns bad after serving this many RPCs")
)

// The service name clients probe (healthProbe.service in their config).
const serviceName = "grpc.testing.TestService"

type backend struct {
	testgrpc.UnimplementedTestServiceServer
	index   int
	addr    string
	health  *health.Server
	rpcs    atomic.Int64
	bad     atomic.Bool
	badMode string // "" if this backend stays good
}

func (b *backend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	n := b.rpcs.Add(1)
	if b.badMode != "" && n == *failAfter+1 {
		b.turnBad()
	}
	if b.bad.Load() && b.badMode == "unavailable" {
		return nil, status.Errorf(codes.Unavailable, "backend %s is failing (-mode unavailable)", b.addr)
	}
	return &testpb.SimpleResponse{Hostname: b.addr}, nil
}

func (b *backend) turnBad() {
	b.bad.Store(true)
	switch b.badMode {
	case "unavailable":
		// The connection and the health service stay up: only the RPC
		// outcomes show that something is wrong (the client's breaker).
		fmt.Printf("backend %d (%s) now fails every RPC with UNAVAILABLE\n", b.index, b.addr)
	case "not_serving":
		// RPCs still succeed, as on a server that is draining: only the
		// health checks tell (the client's healthProbe).
		b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		b.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_NOT_SERVING)
		fmt.Printf("backend %d (%s) now reports NOT_SERVING\n", b.index, b.addr)
	}
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *mode != "unavailable" && *mode != "not_serving" {
		log.Fatalf("server: mode: %q, must be unavailable or not_serving", *mode)
	}
	list := strings.Split(*ports, ",")
	if *fail < 0 || *fail > len(list) {
		log.Fatalf("server: fail: %d, must be in [0, %d] (a position in -ports)", *fail, len(list))
	}
	if *failAfter < 0 {
		log.Fatalf("server: fail-after: %d, must be >= 0", *failAfter)
	}

	var backends []*backend
	var servers []*grpc.Server
	for i, p := range list {
		port, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || port < 0 || port > 65535 {
			log.Fatalf("server: ports: %q, must be comma-separated port numbers in [0, 65535]", p)
		}
		lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			log.Fatalf("server: %v", err)
		}
		b := &backend{index: i + 1, addr: lis.Addr().String(), health: health.NewServer()}
		b.health.SetServingStatus(serviceName, healthpb.HealthCheckResponse_SERVING)
		s := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(s, b)
		healthpb.RegisterHealthServer(s, b.health)
		note := ""
		if i+1 == *fail {
			b.badMode = *mode
			note = fmt.Sprintf(" (turns bad after %d RPCs: %s)", *failAfter, *mode)
			if *failAfter == 0 {
				b.turnBad()
			}
		}
		go s.Serve(lis)
		backends = append(backends, b)
		servers = append(servers, s)
		fmt.Printf("backend %d listening on %s%s\n", b.index, b.addr, note)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	for _, s := range servers {
		stopWithin(s, 2*time.Second)
	}
	parts := make([]string, len(backends))
	for i, b := range backends {
		parts[i] = fmt.Sprintf("%s %d", b.addr, b.rpcs.Load())
	}
	fmt.Println("RPCs received:", strings.Join(parts, ", "))
}

// stopWithin stops s gracefully, or at once if in-flight RPCs or open
// streams hold it up for longer than d.
func stopWithin(s *grpc.Server, d time.Duration) {
	t := time.AfterFunc(d, s.Stop)
	s.GracefulStop()
	t.Stop()
}
