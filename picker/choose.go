package picker

// choose returns the best of p.k distinct candidates that their gate
// admits, or -1 if every candidate drawn was rejected.
//
// The default choiceCount of 2 takes a short path while both candidates
// are distinct and admitted (with equal weights both come from one random
// number); otherwise chooseSlow goes on from the candidates already drawn,
// so that the draws are those of chooseSlow alone.
func (p *Picker) choose(now int64) int {
	if p.k != 2 {
		return p.chooseSlow(now, nil)
	}
	a, b, u := p.sampleTwo()
	if a == b {
		return p.chooseSlow(now, []int{a})
	}
	ea, eb := &p.entries[a], &p.entries[b]
	if !ea.admits() || !eb.admits() {
		return p.chooseSlow(now, []int{a, b})
	}
	if p.beatsU(eb, ea, now, u) {
		return b
	}
	return a
}

// sampleTwo draws two indices independently, with probability
// proportional to weight (they may be equal), and the random fraction u
// of their comparison (beats).
func (p *Picker) sampleTwo() (a, b int, u float64) {
	if p.alias != nil {
		return p.sample(), p.sample(), randFloat64()
	}
	// Equal weights need 32 random bits per index: one draw gives both,
	// and the fraction too. b is floor(x n / 2^32) of 32 random bits x; the
	// low 32 bits of x n are the fractional part of that product, uniform
	// (to n / 2^32) and independent of b: a second draw (a fifth of a
	// pick's cost) saved.
	n := uint64(len(p.entries))
	r := randUint64()
	prod := uint64(uint32(r)) * n
	return int((r >> 32) * n >> 32), int(prod >> 32), float64(uint32(prod)) / (1 << 32)
}

// admits reports whether e's gate (if it decides) admits a request now. A
// closed gate, the common case, is read from the Endpoint's own line.
func (e *Entry) admits() bool {
	return !e.Gated || e.Endpoint.closed.Closed() || e.Endpoint.gate.Admits()
}

// chooseSlow draws until k candidates admitted by their breaker are
// compared, starting with the distinct indices drawn (already drawn by
// choose). A candidate whose breaker rejects the call is replaced by
// another draw: otherwise the remaining candidate would win unopposed, and
// with one of five endpoints ejected a slow endpoint got 10 % of the
// traffic instead of under 1 %. Draws are bounded by the number of
// endpoints and by the buffer.
func (p *Picker) chooseSlow(now int64, drawn []int) int {
	var seenBuf [2*MaxChoiceCount + 2]int
	seen := seenBuf[:0]
	best, compared := -1, 0
	for len(seen) < len(p.entries) && len(seen) < len(seenBuf) && compared < p.k {
		var idx int
		if len(seen) < len(drawn) {
			idx = drawn[len(seen)]
		} else {
			idx = p.sampleDistinct(seen)
		}
		seen = append(seen, idx)
		e := &p.entries[idx]
		if !e.admits() {
			continue
		}
		compared++
		if best < 0 || p.beats(e, &p.entries[best], now) {
			best = idx
		}
	}
	return best
}
