package consultest_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// status polls the instance's aggregated status until it equals want
// ("" = gone from the catalog).
func waitStatus(t *testing.T, c *api.Client, service, id, want string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	got := "?"
	for time.Now().Before(deadline) {
		entries, _, err := c.Health().Service(service, "", false, nil)
		require.NoError(t, err)
		got = ""
		for _, e := range entries {
			if e.Service.ID == id {
				got = e.Checks.AggregatedStatus()
			}
		}
		if got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("instance %s of %s: status %q after %v, want %q", id, service, got, testTimeout, want)
}

func grpcRegistration(id, addr string) *api.AgentServiceRegistration {
	return &api.AgentServiceRegistration{
		ID: id, Name: "echo", Address: "127.0.0.1", Port: 1, Tags: []string{"grpc"},
		Weights: &api.AgentWeights{Passing: 5, Warning: 1},
		Check: &api.AgentServiceCheck{
			GRPC: addr, Interval: "20ms", Timeout: "200ms", DeregisterCriticalServiceAfter: "300ms",
		},
	}
}

// TestAgent_GRPCCheckDrivesStatusAndReaping: a registered instance starts
// critical, turns passing when its server answers SERVING, critical when it
// answers NOT_SERVING, and is removed once critical for
// DeregisterCriticalServiceAfter.
func TestAgent_GRPCCheckDrivesStatusAndReaping(t *testing.T) {
	b, err := testutil.StartBackend(testutil.Options{})
	require.NoError(t, err)
	defer b.Stop()
	s, c := newServer(t, consultest.Options{CheckMinInterval: 10 * time.Millisecond, ReapMinimum: 100 * time.Millisecond})

	reg := grpcRegistration("echo-1", b.Addr)
	require.NoError(t, c.Agent().ServiceRegister(reg))
	in := s.Instances("echo")
	require.Len(t, in, 1)
	require.Equal(t, api.AgentWeights{Passing: 5, Warning: 1}, in[0].Weights)
	waitStatus(t, c, "echo", "echo-1", api.HealthPassing)
	require.Positive(t, b.Checks(), "the check reached the backend's health service")

	svc, _, err := c.Agent().Service("echo-1", nil)
	require.NoError(t, err)
	require.Equal(t, "echo", svc.Service)
	require.Equal(t, []string{"grpc"}, svc.Tags)

	b.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitStatus(t, c, "echo", "echo-1", api.HealthCritical)
	waitStatus(t, c, "echo", "echo-1", "") // reaped
	_, _, err = c.Agent().Service("echo-1", nil)
	var se api.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusNotFound, se.Code)
}

// TestAgent_StartsCriticalAndRaisesShortIntervals: with Consul's 1s
// minimum interval a check registered every 20ms runs once a second, and
// the instance is critical until its first check passes.
func TestAgent_StartsCriticalAndRaisesShortIntervals(t *testing.T) {
	b, err := testutil.StartBackend(testutil.Options{})
	require.NoError(t, err)
	defer b.Stop()
	b.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s, c := newServer(t, consultest.Options{})
	require.NoError(t, c.Agent().ServiceRegister(grpcRegistration("echo-1", b.Addr)))
	require.Equal(t, api.HealthCritical, s.Instances("echo")[0].Status)
	time.Sleep(300 * time.Millisecond)
	require.LessOrEqual(t, b.Checks(), int64(1), "a 20ms interval is raised to 1s: one check in 300ms")
}

// TestAgent_DeregisterAndForget: deregistering removes the instance (404 the
// second time); ForgetAgentServices drops what the agent registered, as an
// agent restarted without its data does.
func TestAgent_DeregisterAndForget(t *testing.T) {
	b, err := testutil.StartBackend(testutil.Options{})
	require.NoError(t, err)
	defer b.Stop()
	s, c := newServer(t, consultest.Options{CheckMinInterval: 10 * time.Millisecond})
	s.Register(consultest.Instance{ID: "catalog-only", Service: "echo", Port: 9})
	require.NoError(t, c.Agent().ServiceRegister(grpcRegistration("echo-1", b.Addr)))
	require.NoError(t, c.Agent().ServiceRegister(grpcRegistration("echo-2", b.Addr)))
	require.Len(t, s.Instances("echo"), 3)

	require.NoError(t, c.Agent().ServiceDeregister("echo-1"))
	require.Len(t, s.Instances("echo"), 2)
	err = c.Agent().ServiceDeregister("echo-1")
	var se api.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusNotFound, se.Code)

	require.Equal(t, []string{"echo-2"}, s.ForgetAgentServices())
	in := s.Instances("echo")
	require.Len(t, in, 1)
	require.Equal(t, "catalog-only", in[0].ID)
	require.Equal(t, map[string]int{"register": 2, "deregister": 2}, s.AgentRequests())

	bad := grpcRegistration("", b.Addr)
	bad.Name = ""
	err = c.Agent().ServiceRegister(bad)
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, api.StatusError{Code: 400, Body: "Missing service name"}, se)
}
