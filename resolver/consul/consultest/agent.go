package consultest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// agentRegister is PUT /v1/agent/service/register: the instance enters the
// catalog on this node with its check, which starts critical unless the
// registration gives a Status ("Checks are started in the critical state by
// default"). A gRPC check is run by the server against the registered
// address.
func (s *Server) agentRegister(w http.ResponseWriter, r *http.Request) {
	s.countAgent("register")
	var reg api.AgentServiceRegistration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	if reg.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	if reg.Weights != nil && reg.Weights.Passing < 1 {
		http.Error(w, "Passing must be greater than 0", http.StatusBadRequest)
		return
	}
	checks := reg.Checks
	if reg.Check != nil {
		checks = append(api.AgentServiceChecks{reg.Check}, checks...)
	}
	if len(checks) > 1 {
		http.Error(w, "consultest: one check per service only", http.StatusBadRequest)
		return
	}
	var spec *checkSpec
	status := api.HealthPassing // a service without checks is passing
	if len(checks) == 1 {
		c := checks[0]
		var err error
		if spec, err = s.parseCheck(c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		status = c.Status
		if status == "" {
			status = api.HealthCritical
		}
	}
	in := Instance{ID: reg.ID, Service: reg.Name, Address: reg.Address, Port: reg.Port, Tags: reg.Tags, Meta: reg.Meta, Status: status, Namespace: reg.Namespace}
	if reg.Weights != nil {
		in.Weights = *reg.Weights
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "server closed", http.StatusServiceUnavailable)
		return
	}
	old := s.checks[reg.ID]
	delete(s.checks, reg.ID)
	s.registerLocked(in)
	var c *checkRunner
	if spec != nil {
		c = s.startCheckLocked(reg.ID, *spec)
		s.checks[reg.ID] = c
	}
	s.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

// agentDeregister is PUT /v1/agent/service/deregister/:id. Consul answers
// 404 "Unknown service ID" for an ID the agent does not have.
func (s *Server) agentDeregister(w http.ResponseWriter, r *http.Request) {
	s.countAgent("deregister")
	id := r.PathValue("id")
	s.mu.Lock()
	_, known := s.instances[id]
	c := s.deregisterLocked(id)
	s.mu.Unlock()
	if c != nil {
		c.stop()
	}
	if !known {
		http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id), http.StatusNotFound)
	}
}

// agentService is GET /v1/agent/service/:id: 404 when the agent does not
// know the instance.
func (s *Server) agentService(w http.ResponseWriter, r *http.Request) {
	s.countAgent("service")
	id := r.PathValue("id")
	s.mu.Lock()
	in, ok := s.instances[id]
	var e *api.ServiceEntry
	if ok {
		e = s.entryLocked(in)
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, fmt.Sprintf("unknown service ID: %s", id), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-ContentHash", fmt.Sprintf("%x", e.Service.ModifyIndex))
	json.NewEncoder(w).Encode(e.Service)
}

// ForgetAgentServices drops every instance registered through the agent
// endpoints, as an agent restarted without its data directory does, and
// returns their IDs.
func (s *Server) ForgetAgentServices() []string {
	s.mu.Lock()
	var ids []string
	var runners []*checkRunner
	for id := range s.checks {
		ids = append(ids, id)
		runners = append(runners, s.deregisterLocked(id))
	}
	s.mu.Unlock()
	for _, c := range runners {
		c.stop()
	}
	return ids
}

func (s *Server) countAgent(k string) {
	s.mu.Lock()
	s.agentReqs[k]++
	s.mu.Unlock()
}

// checkSpec is a parsed gRPC check.
type checkSpec struct {
	target, service   string
	interval, timeout time.Duration
	reapAfter         time.Duration // 0: never
}

// parseCheck accepts gRPC checks ("host:port[/service]") and, for tests
// that drive the status by hand, TTL checks (never run).
func (s *Server) parseCheck(c *api.AgentServiceCheck) (*checkSpec, error) {
	if c.TTL != "" && c.GRPC == "" {
		return nil, nil
	}
	if c.GRPC == "" {
		return nil, fmt.Errorf("consultest: only gRPC and TTL checks are supported")
	}
	if c.GRPCUseTLS {
		return nil, fmt.Errorf("consultest: gRPC checks over TLS are not supported")
	}
	sp := &checkSpec{target: c.GRPC}
	if t, svc, ok := strings.Cut(c.GRPC, "/"); ok {
		sp.target, sp.service = t, svc
	}
	var err error
	if sp.interval, err = time.ParseDuration(c.Interval); err != nil || sp.interval <= 0 {
		return nil, fmt.Errorf("Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks")
	}
	// "Checks with an interval less than 1s are raised to 1s."
	sp.interval = max(sp.interval, s.opts.CheckMinInterval)
	sp.timeout = 10 * time.Second // Consul's default check timeout
	if c.Timeout != "" {
		if sp.timeout, err = time.ParseDuration(c.Timeout); err != nil || sp.timeout <= 0 {
			return nil, fmt.Errorf("invalid Timeout %q", c.Timeout)
		}
	}
	if c.DeregisterCriticalServiceAfter != "" {
		if sp.reapAfter, err = time.ParseDuration(c.DeregisterCriticalServiceAfter); err != nil || sp.reapAfter < 0 {
			return nil, fmt.Errorf("invalid DeregisterCriticalServiceAfter %q", c.DeregisterCriticalServiceAfter)
		}
		if sp.reapAfter > 0 {
			sp.reapAfter = max(sp.reapAfter, s.opts.ReapMinimum)
		}
	}
	return sp, nil
}

// checkRunner runs one gRPC check until stopped.
type checkRunner struct {
	cancel context.CancelFunc
	done   chan struct{}
	stop   func()
}

// startCheckLocked starts the check of instance id. Caller must hold s.mu.
func (s *Server) startCheckLocked(id string, sp checkSpec) *checkRunner {
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkRunner{cancel: cancel, done: make(chan struct{})}
	c.stop = sync.OnceFunc(func() {
		cancel()
		<-c.done
	})
	go func() {
		defer close(c.done)
		cc, err := grpc.NewClient("passthrough:///"+sp.target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			s.SetStatus(id, api.HealthCritical)
			return
		}
		defer cc.Close()
		hc := healthpb.NewHealthClient(cc)
		for {
			status := api.HealthCritical
			cctx, ccancel := context.WithTimeout(ctx, sp.timeout)
			resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: sp.service})
			ccancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				status = api.HealthPassing
			}
			if s.checkResult(id, c, status, sp.reapAfter) {
				return // reaped
			}
			if !waitCtx(ctx, sp.interval) {
				return
			}
		}
	}()
	return c
}

// checkResult records a check's status and reaps the instance once it has
// been critical for reapAfter. It says whether the instance was reaped.
func (s *Server) checkResult(id string, c *checkRunner, status string, reapAfter time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checks[id] != c {
		return true // deregistered or replaced meanwhile
	}
	s.setStatusLocked(id, status)
	in := s.instances[id]
	if reapAfter > 0 && in.Status == api.HealthCritical && time.Since(in.since) >= reapAfter {
		delete(s.checks, id)
		s.deregisterLocked(id)
		return true
	}
	return false
}
