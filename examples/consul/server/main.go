// Command server serves grpc.testing.TestService on 127.0.0.1 and registers
// itself with the local Consul agent under a gRPC health check, so that
// clients dialing fulcrum://consul/<name> find it.
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
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
)

var (
	consulAddr    = flag.String("consul", "127.0.0.1:8500", "HTTP address of the local Consul agent")
	name          = flag.String("name", "echo", "Consul service name")
	port          = flag.Int("port", 0, "port to listen on, on 127.0.0.1 (0 picks a free port)")
	weight        = flag.Uint("weight", 1, "weight the balancer gives this instance (Consul Weights.Passing)")
	tags          = flag.String("tags", "", "comma-separated Consul tags")
	checkInterval = flag.Duration("check-interval", 10*time.Second, "interval of the agent's gRPC health check")
)

// backend names itself in every response so that clients can tell the
// instances apart.
type backend struct {
	testgrpc.UnimplementedTestServiceServer
	addr string
}

func (b *backend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Hostname: b.addr}, nil
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *port < 0 || *port > 65535 {
		log.Fatalf("server: port: %d, must be in [0, 65535]", *port)
	}
	if *weight < 1 || *weight > 10000 {
		log.Fatalf("server: weight: %d, must be in [1, 10000]", *weight)
	}
	if *checkInterval <= 0 {
		log.Fatalf("server: check-interval: %v, must be > 0", *checkInterval)
	}

	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	addr := lis.Addr().String()
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, &backend{addr: addr})
	// The agent's gRPC check asks this health service.
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(lis)

	cfg := api.DefaultConfig()
	cfg.Address = *consulAddr
	cli, err := api.NewClient(cfg)
	if err != nil {
		log.Fatalf("server: consul client: %v", err)
	}
	var tagList []string
	if *tags != "" {
		tagList = strings.Split(*tags, ",")
	}
	// Serve first, then register: the agent checks the server at once.
	reg, err := consul.Register(context.Background(), cli, *name,
		fresolver.Endpoint{Addresses: []string{addr}, Weight: uint32(*weight)},
		consul.RegisterOptions{Tags: tagList, CheckInterval: *checkInterval, CheckTimeout: min(*checkInterval, 5*time.Second)})
	if err != nil {
		s.Stop()
		log.Fatalf("server: registering with the Consul agent at %s: %v (is an agent running?)", *consulAddr, err)
	}
	fmt.Printf("listening on %s, registered as %s\n", addr, reg.ID())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	// Deregister before stopping, so that clients stop picking this
	// instance before its connections close.
	if err := reg.Close(); err != nil {
		fmt.Printf("deregistering: %v\n", err)
	}
	hs.Shutdown()
	t := time.AfterFunc(2*time.Second, s.Stop)
	s.GracefulStop()
	t.Stop()
	fmt.Println("deregistered and stopped")
}
