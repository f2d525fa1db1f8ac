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
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
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
	changed   chan struct{}           // closed and replaced on every write; guarded by mu
	instances map[string]*instanceRec // by ID
	svcIndex  map[string]uint64       // service name -> index of its last write
	index     uint64                  // the raft index: last write
	checks    map[string]*checkRunner // by instance ID; agent-registered only
	requests  []Request               // health queries seen
	agentReqs map[string]int          // agent endpoint -> count
	fault     fault                   // injected behaviour
	closed    bool
}

type instanceRec struct {
	Instance
	since time.Time // when Status last changed, for the reaper
}

// fault is what the test asked the server to do wrong.
type fault struct {
	code        int // non-zero: every request fails with it
	body        string
	delay       time.Duration // added before every answer
	noLeader    bool          // X-Consul-KnownLeader: false
	empty       bool          // health answers [] whatever is registered
	indexZero   bool          // X-Consul-Index: 0
	noBlock     bool          // health answers at once, index unchanged
	lastContact time.Duration
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

// SetFailure makes every request fail with HTTP status code and body, as a
// server without a leader does (500 "No cluster leader"); 0 ends it.
func (s *Server) SetFailure(code int, body string) {
	s.setFault(func(f *fault) { f.code, f.body = code, body })
}

// SetDelay delays every answer by d (a slow or overloaded server).
func (s *Server) SetDelay(d time.Duration) { s.setFault(func(f *fault) { f.delay = d }) }

// SetKnownLeader sets X-Consul-KnownLeader (true by default).
func (s *Server) SetKnownLeader(ok bool) { s.setFault(func(f *fault) { f.noLeader = !ok }) }

// SetLastContact sets X-Consul-LastContact (0 by default).
func (s *Server) SetLastContact(d time.Duration) { s.setFault(func(f *fault) { f.lastContact = d }) }

// SetEmptyAnswers makes the health endpoint answer [] whatever is
// registered, as a server that lost its state or has not caught up does.
func (s *Server) SetEmptyAnswers(on bool) { s.setFault(func(f *fault) { f.empty = on }) }

// SetIndexZero makes the health endpoint see index 0, the bug the blocking
// documentation warns of: answers carry X-Consul-Index: 0, a query with
// index 0 never blocks (a client that sends it back busy-loops) and a query
// with index 1 blocks until its wait ends, as no index ever exceeds it.
func (s *Server) SetIndexZero(on bool) { s.setFault(func(f *fault) { f.indexZero = on }) }

// SetNoBlock makes the health endpoint answer at once, as if an idempotent
// write had just happened: "the return of a blocking request is no
// guarantee of a change".
func (s *Server) SetNoBlock(on bool) { s.setFault(func(f *fault) { f.noBlock = on }) }

func (s *Server) setFault(set func(*fault)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set(&s.fault)
	s.notifyLocked()
}

// faulty applies the injected delay and failure before the real handler.
func (s *Server) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.fault
		s.mu.Unlock()
		if f.delay > 0 {
			t := time.NewTimer(f.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.code != 0 {
			if strings.HasPrefix(r.URL.Path, "/v1/health/") {
				s.record(r)
			}
			http.Error(w, f.body, f.code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) record(r *http.Request) {
	q := r.URL.Query()
	idx, _ := strconv.ParseUint(q.Get("index"), 10, 64)
	s.mu.Lock()
	s.requests = append(s.requests, Request{At: time.Now(), Service: r.PathValue("service"), Index: idx, Wait: q.Get("wait"), Query: q})
	s.mu.Unlock()
}

// healthService is GET /v1/health/service/:service.
func (s *Server) healthService(w http.ResponseWriter, r *http.Request) {
	s.record(r)
	q := r.URL.Query()
	var minIndex uint64
	if v := q.Get("index"); v != "" {
		var err error
		if minIndex, err = strconv.ParseUint(v, 10, 64); err != nil {
			http.Error(w, "Invalid index", http.StatusBadRequest)
			return
		}
	}
	wait := DefaultWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			http.Error(w, "Invalid wait time", http.StatusBadRequest)
			return
		}
		wait = min(d, MaxWait)
		if wait <= 0 {
			wait = DefaultWait
		}
	}
	if q.Has("stale") && q.Has("consistent") {
		http.Error(w, "Cannot specify ?stale with ?consistent, conflicting semantics.", http.StatusBadRequest)
		return
	}
	if dc := q.Get("dc"); dc != "" && dc != s.opts.Datacenter {
		http.Error(w, "No path to datacenter", http.StatusInternalServerError)
		return
	}
	service := r.PathValue("service")
	// "A small random amount of additional wait time is added to the
	// supplied maximum wait time ... up to wait / 16".
	deadline := time.NewTimer(wait + rand.N(wait/JitterFraction+1))
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			http.Error(w, "server closed", http.StatusServiceUnavailable)
			return
		}
		idx := s.svcIndex[service]
		if idx == 0 {
			// A service never written: the highest index of the table
			// (Consul never answers 0 unless it has the bug).
			idx = s.index
		}
		changed, f := s.changed, s.fault
		if f.indexZero {
			// The bug: the state store reports index 0 for the query, in
			// the header and in the comparison that decides blocking.
			idx = 0
		}
		// Block while nothing newer than the client's index exists:
		// "wait for any changes subsequent to that index". Index 0 never
		// blocks.
		if minIndex == 0 || idx > minIndex || f.noBlock {
			entries := s.entriesLocked(service, q)
			s.mu.Unlock()
			if f.empty {
				entries = []*api.ServiceEntry{}
			}
			s.answer(w, idx, f, entries)
			return
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			minIndex = 0 // answer with whatever there is now
		case <-r.Context().Done():
			return
		}
	}
}

// statusLeader is GET /v1/status/leader: the leader's server address, ""
// without one.
func (s *Server) statusLeader(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	noLeader := s.fault.noLeader
	s.mu.Unlock()
	leader := s.opts.NodeAddress + ":8300"
	if noLeader {
		leader = ""
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(leader)
}

func (s *Server) answer(w http.ResponseWriter, idx uint64, f fault, entries []*api.ServiceEntry) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(!f.noLeader))
	h.Set("X-Consul-LastContact", strconv.FormatInt(f.lastContact.Milliseconds(), 10))
	json.NewEncoder(w).Encode(entries)
}

// entriesLocked builds the answer: instances of service matching every tag,
// the namespace and, with ?passing, whose checks all pass. Caller must hold
// s.mu.
func (s *Server) entriesLocked(service string, q url.Values) []*api.ServiceEntry {
	ns := q.Get("ns")
	if ns == "" {
		ns = "default"
	}
	passing := q.Has("passing") && q.Get("passing") != "false" && q.Get("passing") != "0"
	out := []*api.ServiceEntry{}
	for _, in := range s.instances {
		inNS := in.Namespace
		if inNS == "" {
			inNS = "default"
		}
		if in.Service != service || inNS != ns || (passing && in.Status != api.HealthPassing) {
			continue
		}
		if !containsAll(in.Tags, q["tag"]) {
			continue
		}
		out = append(out, s.entryLocked(in))
	}
	slices.SortFunc(out, func(a, b *api.ServiceEntry) int { return strings.Compare(a.Service.ID, b.Service.ID) })
	return out
}

func (s *Server) entryLocked(in *instanceRec) *api.ServiceEntry {
	idx := s.svcIndex[in.Service]
	checkID, name := "service:"+in.ID, "Service '"+in.Service+"' check"
	if in.Status == api.HealthMaint {
		checkID, name = api.ServiceMaintPrefix+in.ID, "Service Maintenance Mode"
	}
	status := in.Status
	if status == api.HealthMaint {
		status = api.HealthCritical
	}
	return &api.ServiceEntry{
		Node: &api.Node{Node: s.opts.Node, Address: s.opts.NodeAddress, Datacenter: s.opts.Datacenter},
		Service: &api.AgentService{
			ID: in.ID, Service: in.Service, Tags: slices.Clone(in.Tags), Meta: in.Meta,
			Address: in.Address, Port: in.Port, Weights: in.Weights, Namespace: in.Namespace,
			Datacenter: s.opts.Datacenter, CreateIndex: idx, ModifyIndex: idx,
		},
		Checks: api.HealthChecks{
			{Node: s.opts.Node, CheckID: "serfHealth", Name: "Serf Health Status", Status: api.HealthPassing},
			{Node: s.opts.Node, CheckID: checkID, Name: name, Status: status, ServiceID: in.ID, ServiceName: in.Service},
		},
	}
}

func containsAll(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
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
