package endpointset

// The events an adapter reports about one endpoint.

// healthOKLocked says whether r passes the connection and health gates
// (everything but the breaker). Caller must hold s.mu.
func (s *Set) healthOKLocked(r *Record) bool {
	switch {
	case r.conn != ConnReady:
		return false
	case !s.opts.Probing:
		return true
	case s.opts.Warmup && !r.warmed:
		return false
	}
	return !r.known || r.healthy
}

// transitionLocked runs an event on r and starts its slow-start ramp if
// the event made it pass the health gates and it is due one. Caller must
// hold s.mu.
func (s *Set) transitionLocked(r *Record, event func()) {
	before := s.healthOKLocked(r)
	event()
	if !before && s.healthOKLocked(r) && r.rampNext {
		r.rampNext = false
		if s.cfg.SlowStart.Window > 0 {
			r.rampFrom = s.now()
		}
	}
}

// SetConn records r's connectivity as its transport reports it.
func (s *Set) SetConn(r *Record, c Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs[r.Key] != r || r.conn == c {
		return
	}
	s.transitionLocked(r, func() {
		r.everReady = r.everReady || c == ConnReady
		r.conn = c
	})
}

// NewConnection tells that r has a new connection (gRPC: a SubConn became
// READY), whose health is not yet known: its verdict and warm-up start
// over (a reconnected endpoint gets no traffic before its first probe),
// and an endpoint that was connected before ramps again when it passes.
func (s *Set) NewConnection(r *Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs[r.Key] != r {
		return
	}
	s.transitionLocked(r, func() {
		if r.hadConn {
			r.rampNext = true
		}
		r.hadConn = true
		r.known, r.healthy, r.warmed, r.reason = false, false, false, ""
	})
}

// SetHealth records a probe verdict for r's current connection. The
// adapter must not report verdicts of a connection that is gone; a
// verdict may arrive before the transport reports the connection Ready.
func (s *Set) SetHealth(r *Record, healthy bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs[r.Key] != r {
		return
	}
	s.transitionLocked(r, func() {
		if !healthy {
			r.rampNext = true // it ramps again when it recovers
		}
		r.known, r.healthy, r.reason = true, healthy, reason
		r.warmed = r.warmed || healthy
	})
}
