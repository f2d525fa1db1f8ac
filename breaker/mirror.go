package breaker

import "sync/atomic"

// MirrorClosed makes b keep *flag equal to "b is closed": set now, and
// after every transition by the goroutine that made it. A caller that
// admits most calls on a closed breaker (the picker, for every candidate
// of every pick) can then test the common case with one load of memory of
// its own, without reaching b and its phase (two dependent cache misses
// per candidate at a thousand endpoints).
//
// *flag may lag a transition for an instant, like Admits; a caller must
// still take the call's admission from Allow. It never stays wrong: each
// transition stores the flag again and then checks that the phase it
// stored is still current, so the last store is of the current phase.
// A breaker mirrors to one flag; a second call detaches the first flag,
// leaving it false (not closed: its reader asks b).
func (b *Breaker) MirrorClosed(flag *atomic.Bool) {
	if old := b.mirror.Swap(flag); old != nil && old != flag {
		old.Store(false)
	}
	b.syncMirror()
}

// syncMirror stores b's closedness in its mirror, if any. Called after
// every transition that may change it.
func (b *Breaker) syncMirror() {
	m := b.mirror.Load()
	if m == nil {
		return
	}
	for {
		p := b.cur.Load()
		m.Store(p.state == Closed)
		if b.cur.Load() == p {
			return
		}
	}
}
