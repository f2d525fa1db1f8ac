package consul_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// fastChecks lets the fake agent run checks and reap far faster than
// Consul's minimums of 1s and 1m.
var fastChecks = consultest.Options{CheckMinInterval: 10 * time.Millisecond, ReapMinimum: 100 * time.Millisecond}

func TestRegister_RejectsBadArguments(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	ep := resolver.Endpoint{Addresses: []string{"127.0.0.1:5000"}}
	tests := []struct {
		name    string
		cli     *api.Client
		svc     string
		ep      resolver.Endpoint
		opts    consul.RegisterOptions
		wantErr string
	}{
		{"nil client", nil, "echo", ep, consul.RegisterOptions{}, "consul: client: nil, must be non-nil"},
		{"bad name", c, "a/b", ep, consul.RegisterOptions{}, `consul: service: "a/b", must be a non-empty Consul service name without '/', '?', '#', '%' or spaces`},
		{"no address", c, "echo", resolver.Endpoint{}, consul.RegisterOptions{}, "consul: addresses: [], must hold the instance's host:port"},
		{"bad address", c, "echo", resolver.Endpoint{Addresses: []string{"127.0.0.1"}}, consul.RegisterOptions{}, `consul: address: "127.0.0.1", must be host:port with a port in [1, 65535]`},
		{"port 0", c, "echo", resolver.Endpoint{Addresses: []string{"127.0.0.1:0"}}, consul.RegisterOptions{}, `consul: address: "127.0.0.1:0", must be host:port with a port in [1, 65535]`},
		{"timeout above interval", c, "echo", ep, consul.RegisterOptions{CheckInterval: time.Second, CheckTimeout: 2 * time.Second}, "consul: checkTimeout: 2s, must be in (0, checkInterval (1s)]"},
		{"negative interval", c, "echo", ep, consul.RegisterOptions{CheckInterval: -1}, "consul: checkInterval: -1ns, must be > 0"},
		{"negative deregister", c, "echo", ep, consul.RegisterOptions{DeregisterCriticalServiceAfter: -1}, "consul: deregisterCriticalServiceAfter: -1ns, must be >= 0"},
		{"weight too large", c, "echo", resolver.Endpoint{Addresses: ep.Addresses, Weight: 70000}, consul.RegisterOptions{}, "consul: weight: 70000 (warning 0), must be <= 65535"},
		{"bad id", c, "echo", ep, consul.RegisterOptions{ID: "a b"}, `consul: id: "a b", must not contain '/', '?', '#', '%' or spaces`},
		{"zones differ", c, "echo", resolver.Endpoint{Addresses: ep.Addresses, Zone: "a", Metadata: map[string]string{"zone": "b"}}, consul.RegisterOptions{}, `consul: zone: "a", must equal metadata.zone "b" when both are given`},
		{"bad zone meta key", c, "echo", ep, consul.RegisterOptions{ZoneMeta: "topology.zone"}, `consul: zoneMeta: "topology.zone", must be a Consul meta key: 1 to 128 letters, digits, '-' and '_'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := consul.Register(context.Background(), tt.cli, tt.svc, tt.ep, tt.opts)
			require.EqualError(t, err, tt.wantErr)
		})
	}
	require.Empty(t, s.AgentRequests(), "nothing reached the agent")
}

// TestRegister_RegistersWithGRPCCheckAndDeregistersOnClose: the instance
// appears with its weight, tags, meta and a gRPC check that the agent runs
// against the server (critical until the first check passes); Close removes
// it.
func TestRegister_RegistersWithGRPCCheckAndDeregistersOnClose(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, fastChecks)
	b := startBackends(t, 1)[0]
	reg, err := consul.Register(context.Background(), c, "echo",
		resolver.Endpoint{Addresses: []string{b.Addr}, Weight: 3, Metadata: map[string]string{"zone": "a"}},
		consul.RegisterOptions{Tags: []string{"v1"}, WarningWeight: 2, CheckInterval: 20 * time.Millisecond, CheckTimeout: 10 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, "echo-"+b.Addr, reg.ID())
	in := s.Instances("echo")
	require.Len(t, in, 1)
	require.Equal(t, "127.0.0.1", in[0].Address)
	require.Equal(t, api.AgentWeights{Passing: 3, Warning: 2}, in[0].Weights)
	require.Equal(t, []string{"v1"}, in[0].Tags)
	require.Equal(t, map[string]string{"zone": "a"}, in[0].Meta)

	src, err := consul.NewSource(c, consul.Options{Wait: time.Second, MinInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	rec, _ := watch(t, src, "echo")
	i := rec.waitFor(t, defaultTestTimeout, 0, "the instance passing", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	require.Equal(t, uint32(3), rec.all()[i].Endpoints[0].Weight)
	require.Positive(t, b.Checks(), "the agent's gRPC check reached the server")

	b.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	i = rec.waitFor(t, defaultTestTimeout, i+1, "the instance failing", func(u resolver.Update) bool { return u.Err != nil })
	b.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	i = rec.waitFor(t, defaultTestTimeout, i+1, "the instance passing again", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })

	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close is idempotent")
	require.Empty(t, s.Instances("echo"))
	require.Equal(t, 1, s.AgentRequests()["deregister"])
	rec.waitFor(t, changeDeadline, i+1, "an authoritative empty set", func(u resolver.Update) bool { return u.Err == nil && len(u.Endpoints) == 0 })
}

// TestRegister_ReregistersWhenTheAgentLostIt: an agent restarted without
// its state forgets the instance; the registration notices within
// RecheckInterval and registers it again.
func TestRegister_ReregistersWhenTheAgentLostIt(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, fastChecks)
	b := startBackends(t, 1)[0]
	reg, err := consul.Register(context.Background(), c, "echo", resolver.Endpoint{Addresses: []string{b.Addr}},
		consul.RegisterOptions{RecheckInterval: 20 * time.Millisecond, CheckInterval: 20 * time.Millisecond, CheckTimeout: 10 * time.Millisecond})
	require.NoError(t, err)
	defer reg.Close()
	require.Equal(t, []string{reg.ID()}, s.ForgetAgentServices())
	require.Empty(t, s.Instances("echo"))
	require.Eventually(t, func() bool { return len(s.Instances("echo")) == 1 }, defaultTestTimeout, 5*time.Millisecond)
	require.Equal(t, 2, s.AgentRequests()["register"])
	require.NoError(t, reg.Close())
	require.Empty(t, s.Instances("echo"))
}

// TestRegister_CancelDeregistersAndAgentDownIsReported: cancelling the
// context deregisters like Close; a Close while the agent fails returns an
// error that says the agent will reap the instance.
func TestRegister_CancelDeregistersAndAgentDownIsReported(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, fastChecks)
	b := startBackends(t, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := consul.Register(ctx, c, "echo", resolver.Endpoint{Addresses: []string{b.Addr}}, consul.RegisterOptions{ID: "one"})
	require.NoError(t, err)
	cancel()
	require.Eventually(t, func() bool { return len(s.Instances("echo")) == 0 }, defaultTestTimeout, 5*time.Millisecond)
	require.NoError(t, reg.Close())

	reg, err = consul.Register(context.Background(), c, "echo", resolver.Endpoint{Addresses: []string{b.Addr}}, consul.RegisterOptions{ID: "two", Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	s.SetFailure(500, "agent down")
	require.ErrorContains(t, reg.Close(), `consul: deregistering "two": Unexpected response code: 500 (agent down); the agent removes it after its check has been critical for 1m0s`)

	_, err = consul.Register(context.Background(), c, "echo", resolver.Endpoint{Addresses: []string{b.Addr}}, consul.RegisterOptions{ID: "three"})
	require.ErrorContains(t, err, `consul: registering "three" with the agent: Unexpected response code: 500 (agent down)`)
}
