// Command devconsul runs the in-process fake Consul of
// resolver/consul/consultest on 127.0.0.1:8500: the health and agent
// endpoints the example uses, with the agent running gRPC health checks.
// It is for trying the example without installing Consul; with Consul
// installed, run `consul agent -dev` instead.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

var listen = flag.String("listen", "127.0.0.1:8500", "HTTP address to serve the Consul API on")

func main() {
	flag.Parse()
	log.SetFlags(0)
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("devconsul: %v", err)
	}
	s := consultest.NewServer(consultest.Options{Listener: lis})
	fmt.Printf("fake Consul ready on %s (health and agent endpoints only; state in memory)\n", s.Addr)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	s.Close()
}
