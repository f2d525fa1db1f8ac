// Package passthrough warns about channel targets that cannot give a load
// balancer more than one backend. It registers nothing: the balancer
// imports it without pulling in the fulcrum:// resolver and its sources
// (issue 21, item 6: "balancer does not import the resolver implementation").
package passthrough

import (
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/resolver"
)

// The resolver's component: the message is about discovery, and it was
// logged under this name before it moved here.
var logger = grpclog.Component("fulcrum-resolver")

// Warn logs a warning, and returns true, when target can only ever give a
// load balancer one backend: the passthrough scheme (what grpc.Dial uses for
// a plain "host:port") hands the balancer exactly the address it was given,
// so every RPC goes to one instance whatever the policy. For grpc-go's own
// dns scheme (what grpc.NewClient uses for a plain "host:port") it logs at
// info level that the list is only re-resolved on connection failures. A
// balancer calls it from Build with balancer.BuildOptions.Target.
func Warn(target resolver.Target) bool {
	switch target.URL.Scheme {
	case "passthrough":
		logger.Warningf("fulcrum: target %q uses the passthrough resolver: the balancer sees a single address and cannot spread load; use fulcrum://dns/%s or fulcrum://static/... instead", target.URL.String(), target.Endpoint())
		return true
	case "dns":
		logger.Infof("fulcrum: target %q uses grpc-go's dns resolver, which re-resolves only when a connection fails; fulcrum://dns/%s also re-resolves periodically", target.URL.String(), target.Endpoint())
	}
	return false
}
