// Command controlplane is a minimal xDS management server (go-control-plane's
// ADS server over a snapshot cache) that serves one service, svc, whose
// Cluster names Fulcrum's weighted_least_request policy. It writes the
// bootstrap file that points grpc-go clients at it and prints every NACK
// it receives.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	v3discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	v3discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	v3cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	v3resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	v3server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	xdsexample "github.com/fulcrum-lb/fulcrum/examples/xds"
)

var (
	port      = flag.Int("port", 18000, "port to listen on, on 127.0.0.1 (0 picks a free port)")
	backends  = flag.String("backends", "127.0.0.1:50051=1,127.0.0.1:50052=2,127.0.0.1:50053=4", "EDS endpoints of svc: host:port=load_balancing_weight,...")
	config    = flag.String("fulcrum-config", "", "Fulcrum config (JSON object) to put in the cluster's TypedStruct instead of cluster.json's")
	bootstrap = flag.String("bootstrap", filepath.Join(os.TempDir(), "fulcrum-xds-bootstrap.json"), "where to write the client bootstrap file")
)

const nodeID = "fulcrum-example"

func main() {
	flag.Parse()
	log.SetFlags(0)
	eps, err := parseBackends(*backends)
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	cluster, err := xdsexample.Cluster(*config)
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	cla, err := xdsexample.Assignment(eps)
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	snap, err := v3cache.NewSnapshot("1", map[v3resource.Type][]types.Resource{
		v3resource.ListenerType: {xdsexample.Listener()},
		v3resource.RouteType:    {xdsexample.Route()},
		v3resource.ClusterType:  {cluster},
		v3resource.EndpointType: {cla},
	})
	if err == nil {
		err = snap.Consistent()
	}
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := v3cache.NewSnapshotCache(true, v3cache.IDHash{}, nil)
	if err := cache.SetSnapshot(ctx, nodeID, snap); err != nil {
		log.Fatalf("controlplane: %v", err)
	}

	lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	bs := fmt.Sprintf(`{"xds_servers": [{"server_uri": "%s", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}], "node": {"id": %q}}`+"\n", lis.Addr(), nodeID)
	if err := os.WriteFile(*bootstrap, []byte(bs), 0o644); err != nil {
		log.Fatalf("controlplane: %v", err)
	}
	xs := v3server.NewServer(ctx, cache, v3server.CallbackFuncs{StreamRequestFunc: logNACK})
	gs := grpc.NewServer()
	v3discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	go gs.Serve(lis)
	fmt.Printf("control plane listening on %s, serving xds:///%s with %d endpoints\n", lis.Addr(), xdsexample.Service, len(eps))
	fmt.Printf("bootstrap written to %s\n", *bootstrap)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	cancel()
	gs.Stop()
	fmt.Println("stopped")
}

// nacked holds the NACK messages already printed. go-control-plane's
// snapshot cache answers a NACK by sending the same snapshot again (the
// client's version is still the old one), so a rejected config is re-sent
// and re-rejected in a loop until the snapshot changes; print each once.
var nacked sync.Map

// logNACK prints a client's rejection of a response: a request that carries
// the response's nonce and an error_detail.
func logNACK(_ int64, req *v3discoverypb.DiscoveryRequest) error {
	d := req.GetErrorDetail()
	if d == nil || req.GetResponseNonce() == "" {
		return nil
	}
	msg := fmt.Sprintf("NACK from %s for %s: %s", req.GetNode().GetId(), req.GetTypeUrl(), strings.Join(strings.Fields(d.GetMessage()), " "))
	if _, seen := nacked.LoadOrStore(msg, true); !seen {
		fmt.Println(msg)
	}
	return nil
}

func parseBackends(s string) ([]xdsexample.Endpoint, error) {
	var eps []xdsexample.Endpoint
	for _, e := range strings.Split(s, ",") {
		addr, ws, _ := strings.Cut(strings.TrimSpace(e), "=")
		w, err := strconv.ParseUint(ws, 10, 32)
		if err != nil || w == 0 {
			return nil, fmt.Errorf("backends: %q, must be host:port=weight with weight >= 1", e)
		}
		eps = append(eps, xdsexample.Endpoint{Addr: addr, Weight: uint32(w)})
	}
	return eps, nil
}
