package consultest

import (
	"cmp"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

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
	node := cmp.Or(in.Node, s.opts.Node)
	return &api.ServiceEntry{
		Node: &api.Node{Node: node, Address: s.opts.NodeAddress, Datacenter: s.opts.Datacenter, Meta: maps.Clone(s.nodeMeta[node])},
		Service: &api.AgentService{
			ID: in.ID, Service: in.Service, Tags: slices.Clone(in.Tags), Meta: in.Meta,
			Address: in.Address, Port: in.Port, Weights: in.Weights, Namespace: in.Namespace,
			Datacenter: s.opts.Datacenter, CreateIndex: idx, ModifyIndex: idx,
		},
		Checks: api.HealthChecks{
			{Node: node, CheckID: "serfHealth", Name: "Serf Health Status", Status: api.HealthPassing},
			{Node: node, CheckID: checkID, Name: name, Status: status, ServiceID: in.ID, ServiceName: in.Service},
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
