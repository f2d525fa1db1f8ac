// Package fulcrum is a client-side load-balancing plugin for grpc-go. A
// blank import registers the weighted_least_request policy and the fulcrum
// resolver scheme:
//
//	import _ "github.com/fulcrum-lb/fulcrum"
//
//	cc, err := grpc.NewClient("fulcrum://dns/user-svc:9000",
//		grpc.WithTransportCredentials(insecure.NewCredentials()),
//		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"weighted_least_request":{}}]}`))
package fulcrum

import (
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/balancer"
	// Registers the fulcrum:// resolver scheme.
	_ "github.com/fulcrum-lb/fulcrum/resolver"
)

// PolicyName is the name of the load-balancing policy in a service config.
const PolicyName = balancer.Name

// SetWeight returns a copy of ep carrying weight w for the
// weighted_least_request policy (default 1; 0 is treated as 1 and values
// above attrs.MaxWeight are clamped, each with a logged reason). Custom
// resolvers call it on the endpoints they report.
func SetWeight(ep resolver.Endpoint, w uint32) resolver.Endpoint {
	return attrs.SetWeight(ep, w)
}

// SetZone returns a copy of ep in zone z (its metadata key attrs.ZoneKey).
// With a localZone configured, the balancer keeps traffic in the client's
// zone while that zone can take it. Custom resolvers call it on the
// endpoints they report.
func SetZone(ep resolver.Endpoint, z string) resolver.Endpoint {
	return attrs.SetZone(ep, z)
}
