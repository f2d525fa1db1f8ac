package endpointset

import "slices"

// Accessors for this package's tests only: no adapter needs them, so they
// are not part of the exported API (issue 21).

// Len returns the number of records.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sorted)
}

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
