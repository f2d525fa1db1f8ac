package consultest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// fault is what the test asked the server to do wrong.
type fault struct {
	code        int // non-zero: every request fails with it
	body        string
	delay       time.Duration // added before every answer
	noLeader    bool          // X-Consul-KnownLeader: false
	empty       bool          // health answers [] whatever is registered
	indexZero   bool          // the query sees index 0: header and blocking
	noBlock     bool          // health answers at once, index unchanged
	lastContact time.Duration
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
