package picker

import "math"

type aliasSlot struct {
	thr   uint32 // keep i when the low 32 random bits are below thr
	other int32
}

// buildAlias builds Vose's alias table: O(1) weighted sampling.
func buildAlias(entries []Entry, total float64) []aliasSlot {
	n := len(entries)
	t := make([]aliasSlot, n)
	prob := make([]float64, n)
	var small, large []int
	for i := range entries {
		prob[i] = entries[i].Weight * float64(n) / total
		if prob[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t[s] = aliasSlot{thr: uint32(min(prob[s]*(1<<32), math.MaxUint32)), other: int32(l)}
		prob[l] -= 1 - prob[s]
		if prob[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		t[i] = aliasSlot{thr: math.MaxUint32, other: int32(i)}
	}
	return t
}
