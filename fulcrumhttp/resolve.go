package fulcrumhttp

import (
	"errors"
	"fmt"
	"net/url"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/driver"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	fresolver "github.com/fulcrum-lb/fulcrum/resolver"
)

// spec is one endpoint as resolution reports it.
// resolution watches one fulcrum:// target through the registered grpc
// resolver of the fulcrum scheme, so HTTP gets exactly the sources and the
// rules of the gRPC side (validation, last-known-good, empty sets, jitter).
// It implements resolver.ClientConn; the resolver calls it from its own
// goroutine.
type resolution struct {
	onUpdate func([]endpointset.Spec, bool)
	onError  func(error)
}

// watch builds the fulcrum resolver for target; a malformed target fails
// here, as grpc.NewClient's first connection would.
func watch(target *url.URL, onUpdate func([]endpointset.Spec, bool), onError func(error)) (resolver.Resolver, error) {
	b := resolver.Get(fresolver.Scheme)
	if b == nil {
		return nil, errors.New("the fulcrum resolver is not registered")
	}
	return b.Build(resolver.Target{URL: *target}, &resolution{onUpdate: onUpdate, onError: onError}, resolver.BuildOptions{})
}

func (r *resolution) UpdateState(s resolver.State) error {
	// The same key, dedup, weights, zone and metadata as the gRPC
	// adapter's.
	members := driver.Members(s.Endpoints)
	specs := make([]endpointset.Spec, len(members))
	for i, m := range members {
		specs[i] = m.Spec
	}
	r.onUpdate(specs, attrs.EmptyHeld(s))
	return nil
}

func (r *resolution) ReportError(err error) { r.onError(err) }

// NewAddress is deprecated in grpc-go and not called by the fulcrum
// resolver.
func (r *resolution) NewAddress([]resolver.Address) {}

func (r *resolution) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{Err: fmt.Errorf("fulcrumhttp: service configs are not used")}
}
