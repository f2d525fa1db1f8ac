package endpointset

// Len returns the number of records (for this package's tests).
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sorted)
}
