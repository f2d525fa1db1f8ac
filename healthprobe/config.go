package healthprobe

import (
	"github.com/fulcrum-lb/fulcrum/probe"
)

// Config is the transport-neutral probe configuration (package probe).
type Config = probe.Config

// DefaultConfig returns probe.DefaultConfig().
func DefaultConfig() Config { return probe.DefaultConfig() }

// GRPCConfig configures the grpc.health.v1.Health/Check prober: the common
// Config (flattened in JSON) and the fields only gRPC probing has. It is the
// "healthProbe" object of the weighted_least_request service config.
type GRPCConfig struct {
	Config
	// Service is the service name sent in HealthCheckRequest. Default "",
	// which asks about the server as a whole (gRPC health checking protocol).
	// A name the server does not know fails every probe (NOT_FOUND).
	Service string `json:"service"`
	// UnimplementedIsHealthy says what a server without the health service
	// (status UNIMPLEMENTED) is: true counts it as a success and logs one
	// warning per prober, as grpc-go's own client health check does; false
	// counts it as a failure. Default true.
	UnimplementedIsHealthy bool `json:"unimplementedIsHealthy"`
}

// DefaultGRPCConfig returns the defaults documented on each GRPCConfig
// field.
func DefaultGRPCConfig() GRPCConfig {
	return GRPCConfig{Config: DefaultConfig(), UnimplementedIsHealthy: true}
}

// Validate reports every field outside its documented bounds (Service may
// be any string).
func (c GRPCConfig) Validate() error {
	return c.Config.Validate()
}
