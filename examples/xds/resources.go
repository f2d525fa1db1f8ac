// Package xdsexample holds the xDS resources of examples/xds: the Cluster
// that names Fulcrum's weighted_least_request as its load-balancing policy
// (gRFC A52), and the Listener, RouteConfiguration and
// ClusterLoadAssignment around it. The controlplane command serves them.
package xdsexample

import (
	_ "embed"
	"fmt"
	"net"
	"strconv"

	v3xdstypepb "github.com/cncf/xds/go/xds/type/v3"
	v3clusterpb "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	v3corepb "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	v3endpointpb "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	v3listenerpb "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	v3routepb "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	v3routerpb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	v3httppb "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	// Lets protojson resolve the fallback policy's type in cluster.json.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
)

// ClusterJSON is cluster.json: the Cluster resource to send.
//
//go:embed cluster.json
var ClusterJSON []byte

// Service is the name clients dial (xds:///svc) and the name of every
// resource.
const Service = "svc"

// Endpoint is one EDS endpoint: host:port and its load_balancing_weight.
type Endpoint struct {
	Addr   string
	Weight uint32
}

// Cluster parses ClusterJSON; a non-empty fulcrumConfig (a JSON object)
// replaces the Fulcrum config in its TypedStruct.
func Cluster(fulcrumConfig string) (*v3clusterpb.Cluster, error) {
	c := &v3clusterpb.Cluster{}
	if err := protojson.Unmarshal(ClusterJSON, c); err != nil {
		return nil, fmt.Errorf("cluster.json: %v", err)
	}
	if fulcrumConfig == "" {
		return c, nil
	}
	policy := c.GetLoadBalancingPolicy().GetPolicies()[0].GetTypedExtensionConfig().GetTypedConfig()
	ts := &v3xdstypepb.TypedStruct{}
	if err := policy.UnmarshalTo(ts); err != nil {
		return nil, fmt.Errorf("cluster.json: first policy: %v", err)
	}
	ts.Value = &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(fulcrumConfig), ts.Value); err != nil {
		return nil, fmt.Errorf("fulcrum config: %q, must be a JSON object: %v", fulcrumConfig, err)
	}
	if err := policy.MarshalFrom(ts); err != nil {
		return nil, err
	}
	return c, nil
}

// Listener is the client-side Listener for Service: an API listener whose
// HTTP connection manager fetches its routes by RDS over ADS.
func Listener() *v3listenerpb.Listener {
	hcm := mustAny(&v3httppb.HttpConnectionManager{
		RouteSpecifier: &v3httppb.HttpConnectionManager_Rds{Rds: &v3httppb.Rds{
			ConfigSource:    &v3corepb.ConfigSource{ConfigSourceSpecifier: &v3corepb.ConfigSource_Ads{Ads: &v3corepb.AggregatedConfigSource{}}},
			RouteConfigName: Service,
		}},
		// grpc-go requires the router filter last; its fields are unused.
		HttpFilters: []*v3httppb.HttpFilter{{
			Name:       "router",
			ConfigType: &v3httppb.HttpFilter_TypedConfig{TypedConfig: mustAny(&v3routerpb.Router{})},
		}},
	})
	return &v3listenerpb.Listener{
		Name:        Service,
		ApiListener: &v3listenerpb.ApiListener{ApiListener: hcm},
		// grpc-go reads the API listener only; the same manager in a filter
		// chain is how go-control-plane's consistency check finds the route.
		FilterChains: []*v3listenerpb.FilterChain{{Filters: []*v3listenerpb.Filter{{
			Name:       wellknown.HTTPConnectionManager,
			ConfigType: &v3listenerpb.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}
}

// Route sends every RPC for Service to cluster Service.
func Route() *v3routepb.RouteConfiguration {
	return &v3routepb.RouteConfiguration{
		Name: Service,
		VirtualHosts: []*v3routepb.VirtualHost{{
			Domains: []string{Service},
			Routes: []*v3routepb.Route{{
				Match:  &v3routepb.RouteMatch{PathSpecifier: &v3routepb.RouteMatch_Prefix{Prefix: "/"}},
				Action: &v3routepb.Route_Route{Route: &v3routepb.RouteAction{ClusterSpecifier: &v3routepb.RouteAction_Cluster{Cluster: Service}}},
			}},
		}},
	}
}

// Assignment is the ClusterLoadAssignment: eps in one locality.
func Assignment(eps []Endpoint) (*v3endpointpb.ClusterLoadAssignment, error) {
	var lbEps []*v3endpointpb.LbEndpoint
	for _, e := range eps {
		host, portStr, err := net.SplitHostPort(e.Addr)
		port, perr := strconv.ParseUint(portStr, 10, 16)
		if err != nil || perr != nil {
			return nil, fmt.Errorf("endpoint: %q, must be host:port", e.Addr)
		}
		lbEps = append(lbEps, &v3endpointpb.LbEndpoint{
			HostIdentifier: &v3endpointpb.LbEndpoint_Endpoint{Endpoint: &v3endpointpb.Endpoint{
				Address: &v3corepb.Address{Address: &v3corepb.Address_SocketAddress{SocketAddress: &v3corepb.SocketAddress{
					Address:       host,
					PortSpecifier: &v3corepb.SocketAddress_PortValue{PortValue: uint32(port)},
				}}},
			}},
			LoadBalancingWeight: wrapperspb.UInt32(e.Weight),
		})
	}
	return &v3endpointpb.ClusterLoadAssignment{
		ClusterName: Service,
		Endpoints: []*v3endpointpb.LocalityLbEndpoints{{
			Locality:            &v3corepb.Locality{Region: "local"},
			LbEndpoints:         lbEps,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}},
	}, nil
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}
