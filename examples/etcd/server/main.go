// Command server serves grpc.testing.TestService on 127.0.0.1 and registers
// itself in etcd under a lease, so that clients dialing fulcrum://etcd/<name>
// find it.
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
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

var (
	etcdAddr = flag.String("etcd", "127.0.0.1:2379", "etcd endpoint")
	name     = flag.String("name", "echo", "service name: the instance is registered under /fulcrum/services/<name>/")
	port     = flag.Int("port", 0, "port to listen on, on 127.0.0.1 (0 picks a free port)")
	weight   = flag.Uint("weight", 1, "weight the balancer gives this instance")
	ttl      = flag.Duration("ttl", 10*time.Second, "lease TTL: how long the key outlives this process if it dies")
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

	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("server: %v", err)
	}
	addr := lis.Addr().String()
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, &backend{addr: addr})
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(lis)

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{*etcdAddr},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(), // etcd's client logs every retry; errors reach us anyway
	})
	if err != nil {
		log.Fatalf("server: etcd client: %v", err)
	}
	defer cli.Close()

	// Serve first, then register: a client may pick the instance as soon
	// as its key appears. The context passed to Register bounds the whole
	// registration (cancelling it deregisters), not just this call.
	reg, err := etcd.Register(context.Background(), cli, *name,
		fresolver.Endpoint{Addresses: []string{addr}, Weight: uint32(*weight)},
		etcd.RegisterOptions{TTL: *ttl, Timeout: 5 * time.Second})
	if err != nil {
		s.Stop()
		log.Fatalf("server: registering in etcd at %s: %v (is etcd running?)", *etcdAddr, err)
	}
	fmt.Printf("listening on %s, registered as %s\n", addr, reg.Key())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	// Deregister before stopping, so that clients stop picking this
	// instance before its connections close.
	if err := reg.Close(); err != nil {
		fmt.Printf("deregistering: %v (etcd deletes the key when the lease expires)\n", err)
	}
	t := time.AfterFunc(2*time.Second, s.Stop)
	s.GracefulStop()
	t.Stop()
	fmt.Println("deregistered and stopped")
}
