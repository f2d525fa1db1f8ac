package xds_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"

	v3xdstypepb "github.com/cncf/xds/go/xds/type/v3"
	v3clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	v3corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	v3endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	v3listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	v3routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	v3routerpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	v3httppb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	v3discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	v3discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	v3cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	v3resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	v3server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	// Lets protojson resolve the fallback policy's type in cluster.json.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
)

// clusterJSON is the Cluster resource that examples/xds/README.md tells users
// to send; every test sends it, with only the names and the Fulcrum config
// (the TypedStruct's value) changed.
const clusterJSON = "../examples/xds/cluster.json"

// controlPlane is an xDS management server on 127.0.0.1: go-control-plane's
// ADS server over a snapshot cache, as grpc-go's own e2e tests run it. It
// records every NACK it receives.
type controlPlane struct {
	addr   string
	nodeID string
	cache  v3cache.SnapshotCache
	gs     *grpc.Server
	cancel context.CancelFunc

	mu      sync.Mutex
	version int
	nacks   []nack
	acks    map[string]string // type URL -> last ACKed version
	changed chan struct{}     // closed and replaced on every NACK and ACK
}

// nack is a rejected response, as the client reported it.
type nack struct {
	typeURL, version, message string
}

// startControlPlane starts a management server; it stops when the test ends.
func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp := &controlPlane{
		addr:    lis.Addr().String(),
		nodeID:  "fulcrum-" + t.Name(),
		cancel:  cancel,
		acks:    make(map[string]string),
		changed: make(chan struct{}),
		// ads: answer only once every resource of the snapshot was asked
		// for, so the client gets a consistent set.
		cache: v3cache.NewSnapshotCache(true, v3cache.IDHash{}, quietLogger{}),
	}
	cb := v3server.CallbackFuncs{StreamRequestFunc: cp.onRequest}
	xs := v3server.NewServer(ctx, cp.cache, cb)
	cp.gs = grpc.NewServer()
	v3discoverygrpc.RegisterAggregatedDiscoveryServiceServer(cp.gs, xs)
	go cp.gs.Serve(lis)
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) stop() {
	cp.cancel()
	cp.gs.Stop()
}

// onRequest records ACKs and NACKs. In the state-of-the-world protocol a
// request carrying a response nonce acknowledges that response; with
// error_detail set it rejects it (a NACK).
func (cp *controlPlane) onRequest(_ int64, req *v3discoverypb.DiscoveryRequest) error {
	if req.GetResponseNonce() == "" {
		return nil
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if d := req.GetErrorDetail(); d != nil {
		cp.nacks = append(cp.nacks, nack{typeURL: req.GetTypeUrl(), version: req.GetVersionInfo(), message: d.GetMessage()})
	} else {
		cp.acks[req.GetTypeUrl()] = req.GetVersionInfo()
	}
	close(cp.changed)
	cp.changed = make(chan struct{})
	return nil
}

// waitNACK waits for a NACK of typeURL and returns it.
func (cp *controlPlane) waitNACK(ctx context.Context, typeURL string) (nack, error) {
	for {
		cp.mu.Lock()
		for _, n := range cp.nacks {
			if n.typeURL == typeURL {
				cp.mu.Unlock()
				return n, nil
			}
		}
		ch := cp.changed
		cp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nack{}, fmt.Errorf("no NACK of %s: %w", typeURL, ctx.Err())
		}
	}
}

// bootstrap is the xDS bootstrap config that points grpc-go's xDS client at
// this server (gRFC A27; the same JSON goes in GRPC_XDS_BOOTSTRAP_CONFIG).
func (cp *controlPlane) bootstrap() []byte {
	return fmt.Appendf(nil, `{
		"xds_servers": [{"server_uri": "passthrough:///%s", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q}
	}`, cp.addr, cp.nodeID)
}

// backendEP is one EDS endpoint: an address and its load_balancing_weight.
type backendEP struct {
	addr   string
	weight uint32
}

// update serves a new snapshot: listener svc -> route -> cluster svc ->
// the endpoints, all in one locality, with fulcrumCfg as the Fulcrum
// config in the cluster's TypedStruct. It returns the snapshot's version.
func (cp *controlPlane) update(t *testing.T, fulcrumCfg map[string]any, eps []backendEP) string {
	t.Helper()
	cluster := loadCluster(t, fulcrumCfg)
	cp.mu.Lock()
	cp.version++
	version := strconv.Itoa(cp.version)
	cp.mu.Unlock()
	snap, err := v3cache.NewSnapshot(version, map[v3resource.Type][]types.Resource{
		v3resource.ListenerType: {listener(serviceName, "route-"+serviceName)},
		v3resource.RouteType:    {route("route-"+serviceName, serviceName, cluster.GetName())},
		v3resource.ClusterType:  {cluster},
		v3resource.EndpointType: {assignment(cluster.GetEdsClusterConfig().GetServiceName(), eps)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), cp.nodeID, snap); err != nil {
		t.Fatal(err)
	}
	return version
}

// waitACK waits until the client has acknowledged version of typeURL.
func (cp *controlPlane) waitACK(ctx context.Context, typeURL, version string) error {
	for {
		cp.mu.Lock()
		got := cp.acks[typeURL]
		ch := cp.changed
		cp.mu.Unlock()
		if got == version {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("no ACK of %s version %s (last ACKed %q): %w", typeURL, version, got, ctx.Err())
		}
	}
}

const serviceName = "svc"

// loadCluster reads the example's Cluster resource and puts fulcrumCfg in
// its TypedStruct (nil keeps the example's config).
func loadCluster(t *testing.T, fulcrumCfg map[string]any) *v3clusterpb.Cluster {
	t.Helper()
	b, err := os.ReadFile(clusterJSON)
	if err != nil {
		t.Fatal(err)
	}
	c := &v3clusterpb.Cluster{}
	if err := protojson.Unmarshal(b, c); err != nil {
		t.Fatalf("%s: %v", clusterJSON, err)
	}
	policy := c.GetLoadBalancingPolicy().GetPolicies()[0].GetTypedExtensionConfig().GetTypedConfig()
	ts := &v3xdstypepb.TypedStruct{}
	if err := policy.UnmarshalTo(ts); err != nil {
		t.Fatalf("%s: first policy: %v", clusterJSON, err)
	}
	if fulcrumCfg != nil {
		if ts.Value, err = structpb.NewStruct(fulcrumCfg); err != nil {
			t.Fatal(err)
		}
		if err := policy.MarshalFrom(ts); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// listener is the client-side Listener for target: an API listener whose
// HTTP connection manager fetches its routes by RDS over ADS.
func listener(target, routeName string) *v3listenerpb.Listener {
	hcm := mustAny(&v3httppb.HttpConnectionManager{
		RouteSpecifier: &v3httppb.HttpConnectionManager_Rds{Rds: &v3httppb.Rds{
			ConfigSource: &v3corepb.ConfigSource{
				ConfigSourceSpecifier: &v3corepb.ConfigSource_Ads{Ads: &v3corepb.AggregatedConfigSource{}},
			},
			RouteConfigName: routeName,
		}},
		// grpc-go requires the router filter last; its fields are unused.
		HttpFilters: []*v3httppb.HttpFilter{{
			Name:       "router",
			ConfigType: &v3httppb.HttpFilter_TypedConfig{TypedConfig: mustAny(&v3routerpb.Router{})},
		}},
	})
	return &v3listenerpb.Listener{
		Name:        target,
		ApiListener: &v3listenerpb.ApiListener{ApiListener: hcm},
		// grpc-go reads the API listener only; the same manager in a filter
		// chain is how go-control-plane's consistency check finds the route.
		FilterChains: []*v3listenerpb.FilterChain{{
			Filters: []*v3listenerpb.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &v3listenerpb.Filter_TypedConfig{TypedConfig: hcm},
			}},
		}},
	}
}

// route sends every RPC for domain to cluster.
func route(name, domain, cluster string) *v3routepb.RouteConfiguration {
	return &v3routepb.RouteConfiguration{
		Name: name,
		VirtualHosts: []*v3routepb.VirtualHost{{
			Domains: []string{domain},
			Routes: []*v3routepb.Route{{
				Match: &v3routepb.RouteMatch{PathSpecifier: &v3routepb.RouteMatch_Prefix{Prefix: "/"}},
				Action: &v3routepb.Route_Route{Route: &v3routepb.RouteAction{
					ClusterSpecifier: &v3routepb.RouteAction_Cluster{Cluster: cluster},
				}},
			}},
		}},
	}
}

// assignment is the ClusterLoadAssignment: eps in one locality of weight 1.
func assignment(name string, eps []backendEP) *v3endpointpb.ClusterLoadAssignment {
	var lbEps []*v3endpointpb.LbEndpoint
	for _, e := range eps {
		host, portStr, _ := net.SplitHostPort(e.addr)
		port, _ := strconv.Atoi(portStr)
		lbEps = append(lbEps, &v3endpointpb.LbEndpoint{
			HostIdentifier: &v3endpointpb.LbEndpoint_Endpoint{Endpoint: &v3endpointpb.Endpoint{
				Address: &v3corepb.Address{Address: &v3corepb.Address_SocketAddress{SocketAddress: &v3corepb.SocketAddress{
					Protocol:      v3corepb.SocketAddress_TCP,
					Address:       host,
					PortSpecifier: &v3corepb.SocketAddress_PortValue{PortValue: uint32(port)},
				}}},
			}},
			LoadBalancingWeight: wrapperspb.UInt32(e.weight),
		})
	}
	return &v3endpointpb.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*v3endpointpb.LocalityLbEndpoints{{
			Locality:            &v3corepb.Locality{Region: "r", Zone: "z"},
			LbEndpoints:         lbEps,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}},
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// quietLogger drops go-control-plane's logs: its debug lines would flood the
// test output, and a log after the test ended would panic.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
