package endpointset

// Read-only accessors of a Set for adapters. Accessors that only tests
// need (Len, Get, Records, Panicking) are in export_test.go, for this
// package's tests; other packages' tests read what the public API gives
// them: the records Update returns, Counts, View and Decision.Seq.

// Results returns the last decision about every endpoint, by key: the HTTP
// adapter's per-endpoint statistics (fulcrumhttp/stats.go) read it between
// decisions.
func (s *Set) Results() map[string]Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]Result, len(s.sorted))
	for _, r := range s.sorted {
		m[r.Key] = r.last
	}
	return m
}
