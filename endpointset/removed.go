package endpointset

import (
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// Endpoints that left the resolver's set are remembered for a while, by
// key, so that one coming back soon is treated as the same endpoint:
//
//   - one that was usable is not slowed by slow start on its return (it
//     was serving a moment ago: churn in the registry), for the slow-start
//     window;
//   - one whose breaker has tripped gets its breaker (and the rest of its
//     picker state) back, for breaker.maxOpenDuration: otherwise an
//     endpoint churning in the registry escapes ejection, since a fresh
//     breaker is closed (issue 21 defect i). maxOpenDuration is the
//     longest open period and how long a closed breaker remembers its
//     back-off level, so within it the breaker is exactly what it would be
//     had the endpoint stayed.
//
// At most maxRemoved endpoints are remembered; the oldest removals are
// forgotten first.

// removal is what is remembered of one removed endpoint.
type removal struct {
	at     time.Time
	n      uint64           // s.removals at its removal: oldest first
	usable bool             // usable at its last decision
	hot    *picker.Endpoint // its picker state, if its breaker ever tripped
}

// maxRemoved bounds the remembered removals: with breakers, an entry holds
// one picker.Endpoint and its breaker (under a kilobyte).
const maxRemoved = 4096

// rememberLocked records the removal of r at now, if there is anything to
// remember. Caller must hold s.mu.
func (s *Set) rememberLocked(r *Record, now time.Time) {
	rm := removal{at: now, n: s.removals, usable: r.last.State == Usable}
	if br := r.Hot.Breaker(); br != nil && br.Snapshot().Transitions > 0 {
		rm.hot = r.Hot
	}
	if !rm.usable && rm.hot == nil {
		return
	}
	if s.removed == nil {
		s.removed = make(map[string]removal)
	}
	if len(s.removed) >= s.maxRemoved {
		// Rare (maxRemoved removals within the windows): a scan is fine.
		oldest, n := "", uint64(0)
		for k, o := range s.removed {
			if oldest == "" || o.n < n {
				oldest, n = k, o.n
			}
		}
		delete(s.removed, oldest)
	}
	s.removals++
	s.removed[r.Key] = rm
}

// expireRemovedLocked forgets what is no longer worth remembering at now.
// Caller must hold s.mu.
func (s *Set) expireRemovedLocked(now time.Time) {
	ramp := time.Duration(s.cfg.SlowStart.Window)
	var keep time.Duration
	if s.opts.Breaker != nil {
		keep = time.Duration(s.opts.Breaker.MaxOpenDuration)
	}
	for k, rm := range s.removed {
		age := now.Sub(rm.at)
		if age >= ramp {
			rm.usable = false
		}
		if age >= keep {
			rm.hot = nil
		}
		if !rm.usable && rm.hot == nil {
			delete(s.removed, k)
		} else {
			s.removed[k] = rm
		}
	}
}

// forgetBreakersLocked drops the remembered breakers (the breaker
// configuration changed: every endpoint gets a fresh one). Caller must
// hold s.mu.
func (s *Set) forgetBreakersLocked() {
	for k, rm := range s.removed {
		if rm.hot == nil {
			continue
		}
		if rm.hot = nil; rm.usable {
			s.removed[k] = rm
		} else {
			delete(s.removed, k)
		}
	}
}
