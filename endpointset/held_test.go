package endpointset

import (
	"errors"
	"strings"
	"testing"
)

// TestDecide_HeldEmptyAnswer (issue 21, empty answers): while the
// endpoints are held against an empty answer of their registry and none
// is usable, requests fail at once with the registry's answer, instead of
// panic mode picking the endpoints the registry says are gone; with one
// usable, or not held, the rules are unchanged.
func TestDecide_HeldEmptyAnswer(t *testing.T) {
	s, _, recs := newSet(t, 3, DefaultConfig())
	for _, r := range recs {
		s.SetHealth(r, false, "NOT_SERVING")
	}
	if d := s.Decide(); !d.Panic || len(d.Entries) != 3 {
		t.Fatalf("not held, all unhealthy: panic %v with %d candidates, want panic over all 3", d.Panic, len(d.Entries))
	}
	s.SetHeld(true)
	d := s.Decide()
	if d.Panic || len(d.Entries) != 0 || d.Wait || !errors.Is(d.Err, ErrNoUsableEndpoint) || !strings.Contains(d.Err.Error(), "the registry reports no endpoints") {
		t.Fatalf("held, all unhealthy: panic %v, %d candidates, wait %v, err %v; want no panic and the registry's answer", d.Panic, len(d.Entries), d.Wait, d.Err)
	}
	// Disconnected and reconnecting: no waiting for endpoints the
	// registry says are gone.
	s.SetConn(recs[0], ConnConnecting)
	if d := s.Decide(); d.Wait || d.Err == nil {
		t.Fatalf("held, one reconnecting: wait %v, err %v; want the error at once", d.Wait, d.Err)
	}
	s.SetConn(recs[0], ConnReady)
	s.SetHealth(recs[1], true, "SERVING")
	// One of three usable: panic mode as without a hold (the registry may
	// be restarting: an endpoint passes its probes).
	if d := s.Decide(); d.Err != nil || len(d.Entries) != 3 || !d.Panic {
		t.Fatalf("held, one usable: err %v, %d candidates, panic %v; want panic mode over all 3, as unheld", d.Err, len(d.Entries), d.Panic)
	}
	s.SetHeld(false)
	s.SetHealth(recs[1], false, "NOT_SERVING")
	if d := s.Decide(); !d.Panic {
		t.Fatal("hold over, all unhealthy: want panic mode again")
	}
}
