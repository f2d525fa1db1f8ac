package breaker

import "sync/atomic"

// The failure-ratio window is numBuckets buckets of Window/numBuckets each.
// A bucket is one atomic word, so that an outcome is counted with a single
// CAS and the slot a bucket belongs to can never disagree with its counts:
//
//	bits 63..40  slot (time slot number, low 24 bits)
//	bits 39..20  failures
//	bits 19..0   total
//
// With buckets of at least 100ms (Config.Validate: Window >= 1s) a 24-bit
// slot number wraps after 19 days; a bucket is mistaken for a current one
// only if nothing wrote to it for a whole multiple of that, to the slot.
// Counts saturate at 2^20-1 per bucket (a million RPCs per bucket to one
// endpoint), after which the ratio is that of the first million.
const (
	numBuckets     = 10
	bucketSlotBits = 24
	bucketCntBits  = 20
	slotMask       = 1<<bucketSlotBits - 1
	cntMax         = 1<<bucketCntBits - 1
)

type window struct {
	buckets [numBuckets]atomic.Uint64
}

func packBucket(slot, failures, total uint64) uint64 {
	return slot<<(2*bucketCntBits) | failures<<bucketCntBits | total
}

func unpackBucket(w uint64) (slot, failures, total uint64) {
	return w >> (2 * bucketCntBits), w >> bucketCntBits & cntMax, w & cntMax
}

// add counts one outcome in time slot slot (>= 0).
func (w *window) add(slot int64, failed bool) {
	b := &w.buckets[slot%numBuckets]
	s := uint64(slot) & slotMask
	var f uint64
	if failed {
		f = 1
	}
	for {
		old := b.Load()
		os, of, ot := unpackBucket(old)
		var nw uint64
		// A bucket newer than s means this goroutine read the clock before
		// another one rotated the bucket: count the outcome there rather
		// than wipe a newer slot.
		if age := (s - os) & slotMask; age == 0 || age > slotMask/2 {
			if ot == cntMax {
				return
			}
			nw = packBucket(os, of+f, ot+1)
		} else {
			nw = packBucket(s, f, 1)
		}
		if b.CompareAndSwap(old, nw) {
			return
		}
	}
}

// sum returns the failures and total of the numBuckets slots ending at slot.
func (w *window) sum(slot int64) (failures, total uint64) {
	s := uint64(slot) & slotMask
	for i := range w.buckets {
		bs, bf, bt := unpackBucket(w.buckets[i].Load())
		if (s-bs)&slotMask < numBuckets {
			failures += bf
			total += bt
		}
	}
	return failures, total
}
