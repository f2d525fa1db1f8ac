package endpointset

import "slices"

// Read-only accessors of a Set, for adapters and tests (Len, for this
// package's tests only, is in export_test.go).

// Get returns the record of key, or nil.
func (s *Set) Get(key string) *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs[key]
}

// Records returns the records in key order (a copy of the slice; the
// records are shared).
func (s *Set) Records() []*Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sorted)
}

// Panicking reports whether the last decision was in panic mode.
func (s *Set) Panicking() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.panicking
}

// Results returns the last decision about every endpoint, by key.
func (s *Set) Results() map[string]Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]Result, len(s.sorted))
	for _, r := range s.sorted {
		m[r.Key] = r.last
	}
	return m
}

// Seq returns the number of decisions made so far (Decision.Seq of the
// last one).
func (s *Set) Seq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}
