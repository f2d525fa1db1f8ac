package resolver

import "time"

// DefaultEmptyGrace is how long an empty answer from a registry (an
// authoritative empty Update with HoldEmpty) must persist before the
// channel is emptied (target option emptyGrace).
//
// Registries answer "no instances" for a few seconds when an agent restarts
// (in the report behind issue 21, three seconds of empty answers from Consul
// failed 601 of 801 RPCs while every backend was serving), and an agent that
// restarted without its data gets its instances back only when they
// register again: consul.Register re-checks every 30s ±10 %, so within 33s
// plus one query. 45s covers that with margin. Holding costs little when the
// instances really are gone: the balancer's connections, health probes and
// breakers keep RPCs off endpoints that do not answer, so only RPCs that
// would have failed anyway (no endpoint at all) fail differently.
const DefaultEmptyGrace = 45 * time.Second

// holds says whether an authoritative empty set u is held off rather than
// pushed: the source asked for it (a registry: etcd, consul; not the
// static, file and dns sources, whose empty sets a person wrote down), a
// grace is configured and there is a non-empty set to keep serving.
func (r *fulcrumResolver) holds(u Update) bool {
	return u.HoldEmpty && r.tc.emptyGrace > 0 && r.serving && len(r.good) > 0
}

// holdEmpty handles an authoritative empty set that holds applies to. The
// source answered, so a failure ends; the grace counts from the first empty
// answer, and later ones do not extend it.
func (r *fulcrumResolver) holdEmpty() {
	r.recovered()
	if r.holdTimer != nil {
		return
	}
	now := r.clk.Now()
	r.holdTimer = r.clk.NewTimer(r.tc.emptyGrace)
	r.heldSince = now
	r.metrics.holdStarted(now)
	r.logger.Warningf("target %q: the source reports no endpoints; keeping the %d current ones until that has lasted emptyGrace=%v (a registry restarting answers empty for a while), unless none of them is usable", r.target, len(r.good), r.tc.emptyGrace)
	// The balancer learns that the set is held: if none of its endpoints
	// is usable (probes fail, connections refused), it fails RPCs at once
	// with the registry's answer instead of spreading them over the held
	// endpoints in panic mode.
	r.pushHeld()
}

// endHold ends a hold because the source said something else: a set, or an
// error (which the last-known-good rule then handles; a later empty answer
// starts a new hold). It reports whether a hold was ended: the channel's
// set is then still marked held.
func (r *fulcrumResolver) endHold() bool {
	if r.holdTimer == nil {
		return false
	}
	r.logger.Infof("target %q: the empty answer lasted %v, less than emptyGrace=%v; it never reached the channel", r.target, r.clk.Since(r.heldSince), r.tc.emptyGrace)
	r.stopHold()
	return true
}

func (r *fulcrumResolver) stopHold() {
	if r.holdTimer != nil {
		r.holdTimer.Stop()
		r.holdTimer = nil
	}
	r.heldSince = time.Time{}
	r.metrics.holdEnded()
}

// holdExpired empties the channel: the source has said "no instances" for
// the whole grace.
func (r *fulcrumResolver) holdExpired() {
	r.holdTimer = nil
	r.logger.Warningf("target %q: the source has reported no endpoints for emptyGrace=%v; dropping the %d endpoints held", r.target, r.tc.emptyGrace, len(r.good))
	r.stopHold()
	r.metrics.confirmed(r.clk.Now())
	r.good = nil
	r.metrics.pushed()
	r.push()
}
