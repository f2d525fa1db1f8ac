// Package consultest is an in-process Consul HTTP API for tests: the health
// service endpoint with real blocking-query semantics and the agent service
// endpoints that consul.Register uses, written from Consul's API
// documentation, with knobs to inject the faults a real cluster shows (5xx,
// slow answers, empty answers, an index that goes backwards or is 0).
//
// It is not Consul: one node, one datacenter, no ACLs, no KV. What it
// implements is pinned by its own tests.
package consultest

import (
	"context"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// Documented constants of blocking queries: "If not set, the wait time
// defaults to 5 minutes", "This is limited to 10 minutes", "This adds up to
// wait / 16 additional time to the maximum duration".
const (
	DefaultWait    = 5 * time.Minute
	MaxWait        = 10 * time.Minute
	JitterFraction = 16
)

// Options configures a Server. The zero value is ready to use.
type Options struct {
	// Datacenter of the server; default "dc1". A query for another one gets
	// a 500 "No path to datacenter", as from a server without a WAN route.
	Datacenter string
	// Node and NodeAddress of the agent; defaults "consultest" and
	// "127.0.0.1".
	Node, NodeAddress string
	// NodeMeta is the meta of the agent's node (the agent's node_meta
	// configuration), served as Node.Meta; SetNodeMeta changes it, or sets
	// the meta of another node.
	NodeMeta map[string]string
	// CheckMinInterval is the smallest check interval the agent runs;
	// Consul raises shorter ones to 1s. Default 1s.
	CheckMinInterval time.Duration
	// ReapMinimum is the smallest DeregisterCriticalServiceAfter the agent
	// honours; Consul's is 1 minute. Default 1m.
	ReapMinimum time.Duration
	// Listener to serve on; default a new one on 127.0.0.1:0. The server
	// closes it.
	Listener net.Listener
}

// Instance is one registered service instance and the status of its check.
type Instance struct {
	ID, Service string
	Address     string // service address; "" means the node's
	Port        int
	Tags        []string
	Meta        map[string]string
	Weights     api.AgentWeights // zero: {Passing: 1, Warning: 1}, Consul's default
	// Status of the instance's service check: api.HealthPassing (default),
	// HealthWarning, HealthCritical or HealthMaint.
	Status    string
	Namespace string // "" means "default"
	// Node the instance runs on; "" means the agent's (Options.Node). Every
	// node has the agent's address; its meta is set with SetNodeMeta.
	Node string
}

// Request is one health query the server received.
type Request struct {
	At      time.Time
	Service string
	Index   uint64 // 0: not given
	Wait    string // as given
	Query   url.Values
}

// Server is a Consul HTTP API on 127.0.0.1.
type Server struct {
	// URL is "http://127.0.0.1:port"; Addr is "127.0.0.1:port", what
	// api.Config.Address takes.
	URL, Addr string

	opts Options
	hs   *httptest.Server

	mu        sync.Mutex
	changed   chan struct{}                // closed and replaced on every write; guarded by mu
	instances map[string]*instanceRec      // by ID
	svcIndex  map[string]uint64            // service name -> index of its last write
	index     uint64                       // the raft index: last write
	checks    map[string]*checkRunner      // by instance ID; agent-registered only
	requests  []Request                    // health queries seen
	agentReqs map[string]int               // agent endpoint -> count
	nodeMeta  map[string]map[string]string // node name -> Node.Meta
	fault     fault                        // injected behaviour
	closed    bool
}

type instanceRec struct {
	Instance
	since time.Time // when Status last changed, for the reaper
}

// NewServer starts a server. Call Close when done.
func NewServer(opts Options) *Server {
	if opts.Datacenter == "" {
		opts.Datacenter = "dc1"
	}
	if opts.Node == "" {
		opts.Node = "consultest"
	}
	if opts.NodeAddress == "" {
		opts.NodeAddress = "127.0.0.1"
	}
	if opts.CheckMinInterval == 0 {
		opts.CheckMinInterval = time.Second
	}
	if opts.ReapMinimum == 0 {
		opts.ReapMinimum = time.Minute
	}
	s := &Server{
		opts:      opts,
		changed:   make(chan struct{}),
		instances: make(map[string]*instanceRec),
		svcIndex:  make(map[string]uint64),
		checks:    make(map[string]*checkRunner),
		agentReqs: make(map[string]int),
		nodeMeta:  map[string]map[string]string{opts.Node: maps.Clone(opts.NodeMeta)},
		index:     1, // a fresh cluster has written its own state already
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health/service/{service}", s.healthService)
	mux.HandleFunc("PUT /v1/agent/service/register", s.agentRegister)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", s.agentDeregister)
	mux.HandleFunc("GET /v1/agent/service/{id}", s.agentService)
	mux.HandleFunc("GET /v1/status/leader", s.statusLeader)
	s.hs = httptest.NewUnstartedServer(s.faulty(mux))
	if opts.Listener != nil {
		s.hs.Listener.Close()
		s.hs.Listener = opts.Listener
	}
	s.hs.Start()
	s.URL = s.hs.URL
	s.Addr = strings.TrimPrefix(s.hs.URL, "http://")
	return s
}

// Close stops the checks and the HTTP server; blocked queries return.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	runners := make([]*checkRunner, 0, len(s.checks))
	for _, c := range s.checks {
		runners = append(runners, c)
	}
	clear(s.checks)
	s.notifyLocked()
	s.mu.Unlock()
	for _, c := range runners {
		c.stop()
	}
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// Config returns an api.Config for this server, with its own transport so
// that the test can close idle connections (api.DefaultConfig shares one).
func (s *Server) Config() (*api.Config, *http.Transport) {
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = s.Addr
	return cfg, cfg.Transport
}

// notifyLocked wakes every blocked query. Caller must hold s.mu.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// writeLocked commits a write that touches service: the raft index moves on
// and the service's index takes it. Caller must hold s.mu.
func (s *Server) writeLocked(service string) {
	s.index++
	s.svcIndex[service] = s.index
	s.notifyLocked()
}

// Register adds or replaces an instance (a catalog write).
func (s *Server) Register(in Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registerLocked(in)
}

func (s *Server) registerLocked(in Instance) {
	if in.Status == "" {
		in.Status = api.HealthPassing
	}
	if in.Weights == (api.AgentWeights{}) {
		in.Weights = api.AgentWeights{Passing: 1, Warning: 1}
	}
	if old, ok := s.instances[in.ID]; ok && old.Service != in.Service {
		s.writeLocked(old.Service)
	}
	s.instances[in.ID] = &instanceRec{Instance: in, since: time.Now()}
	s.writeLocked(in.Service)
}

// Deregister removes an instance (a catalog write); unknown IDs are ignored.
func (s *Server) Deregister(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deregisterLocked(id)
}

func (s *Server) deregisterLocked(id string) *checkRunner {
	in, ok := s.instances[id]
	if !ok {
		return nil
	}
	delete(s.instances, id)
	s.writeLocked(in.Service)
	c := s.checks[id]
	delete(s.checks, id)
	return c
}

// SetStatus sets the status of an instance's check (a catalog write when it
// changes), and says whether the instance exists.
func (s *Server) SetStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setStatusLocked(id, status)
}

func (s *Server) setStatusLocked(id, status string) bool {
	in, ok := s.instances[id]
	if !ok {
		return false
	}
	if in.Status != status {
		in.Status, in.since = status, time.Now()
		s.writeLocked(in.Service)
	}
	return true
}

// Touch writes the service again without changing it (an idempotent
// write): its index moves on, so blocked queries return the same data.
func (s *Server) Touch(service string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeLocked(service)
}

// Instances returns the registered instances of service, sorted by ID.
func (s *Server) Instances(service string) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, in := range s.instances {
		if in.Service == service {
			out = append(out, in.Instance)
		}
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Index returns the raft index (the last write).
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// RestoreSnapshot sets the raft index back to index, as restoring an older
// snapshot does: every service index above it drops to it. Data are left
// as they are; change them afterwards to model the snapshot's content.
// Blocked queries wake, see an index no higher than theirs, and go on
// blocking until their wait ends: then they answer with the lower index.
func (s *Server) RestoreSnapshot(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = index
	for k, v := range s.svcIndex {
		s.svcIndex[k] = min(v, index)
	}
	s.notifyLocked()
}

// Requests returns the health queries received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// AgentRequests returns how many requests each agent endpoint got, keyed
// "register", "deregister", "service".
func (s *Server) AgentRequests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.agentReqs))
	for k, v := range s.agentReqs {
		out[k] = v
	}
	return out
}

// waitCtx is a helper for the agent's goroutines.
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
