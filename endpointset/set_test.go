package endpointset

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// clock is a manually advanced clock for a Set (and its breakers).
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testBreaker() *breaker.Config {
	c := breaker.DefaultConfig()
	c.FailureRatio = 0 // only the consecutive trigger: 5 failures
	return &c
}

// newSet returns a Set over keys a, b, c, ... (first update) with probing
// and warm-up on and default breakers, all connected and healthy.
func newSet(t *testing.T, n int, cfg Config) (*Set, *clock, []*Record) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(cfg, Options{Probing: true, Warmup: true, Breaker: testBreaker(), Now: clk.now})
	var specs []Spec
	for i := range n {
		k := string(rune('a' + i))
		specs = append(specs, Spec{Key: k, Addrs: []string{k}, Weight: 1})
	}
	added, _ := s.Update(specs)
	if len(added) != n {
		t.Fatalf("Update added %d records, want %d", len(added), n)
	}
	recs := s.Records()
	for _, r := range recs {
		connect(s, r, true)
	}
	return s, clk, recs
}

// connect makes r READY with a verdict.
func connect(s *Set, r *Record, healthy bool) {
	s.NewConnection(r)
	s.SetConn(r, ConnReady)
	s.SetHealth(r, healthy, fmt.Sprintf("healthy=%t", healthy))
}

// trip fails r's breaker through the picker accounting, as requests do.
func trip(t *testing.T, r *Record) {
	t.Helper()
	p := picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1}, []picker.Entry{{Endpoint: r.Hot, Weight: 1, Gated: true}})
	for range 5 {
		i, tok, err := p.Select()
		if err != nil {
			t.Fatalf("Select on %s: %v", r.Key, err)
		}
		p.Finish(i, tok, picker.Outcome{Verdict: picker.Failure})
	}
	if st := r.Hot.Breaker().State(); st != breaker.Open {
		t.Fatalf("breaker of %s is %v after 5 failures, want open", r.Key, st)
	}
}

func states(d Decision) string {
	s := ""
	for _, r := range d.Results {
		s += r.State.String()[:2] + " "
	}
	return s
}

// TestDecide_PanicEndsWhenOpenPeriodsEnd is defect 9a at the engine level:
// one endpoint hung (unhealthy), two ejected by their breakers: 1 of 4
// usable is below 50 %, panic. In panic nothing calls the breakers, so
// nothing but time can end it: the decision's Next is the end of the open
// periods, and deciding then ends panic mode and gates breakers again.
func TestDecide_PanicEndsWhenOpenPeriodsEnd(t *testing.T) {
	s, clk, recs := newSet(t, 4, DefaultConfig())
	s.SetHealth(recs[0], false, "timeout")
	trip(t, recs[1])
	trip(t, recs[2])
	d := s.Decide()
	if !d.Panic || len(d.Entries) != 4 {
		t.Fatalf("decision %s panic=%v entries=%d, want panic over all 4 connected", states(d), d.Panic, len(d.Entries))
	}
	for _, e := range d.Entries {
		if e.Gated {
			t.Fatal("an entry is gated in panic mode")
		}
	}
	if want := clk.now().Add(5 * time.Second); !d.Next.Equal(want) {
		t.Fatalf("Next = %v, want the end of the open periods %v", d.Next, want)
	}
	clk.advance(5 * time.Second)
	d = s.Decide()
	if d.Panic {
		t.Fatalf("still in panic after the open periods ended: %s", states(d))
	}
	if len(d.Entries) != 3 {
		t.Fatalf("%d entries, want the 3 not unhealthy", len(d.Entries))
	}
	for i, e := range d.Entries {
		if !e.Gated {
			t.Errorf("entry %d (%s) ungated after panic mode ended", i, d.Records[i].Key)
		}
	}
}

// TestDecide_AllEjectedNoPanicResumesAtOpenEnd is defect 9b: with panic
// mode off and every endpoint ejected, nothing is usable (requests fail or,
// wait-for-ready, wait), and Next is the first end of an open period, at
// which deciding makes the endpoint a candidate again.
func TestDecide_AllEjectedNoPanicResumesAtOpenEnd(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PanicThresholdPercent = 0
	cfg.MaxEjectionPercent = 100
	s, clk, recs := newSet(t, 2, cfg)
	trip(t, recs[0])
	clk.advance(time.Second)
	trip(t, recs[1])
	d := s.Decide()
	if len(d.Entries) != 0 || d.Wait || !errors.Is(d.Err, ErrNoUsableEndpoint) {
		t.Fatalf("entries %d wait %v err %v, want no entries and ErrNoUsableEndpoint", len(d.Entries), d.Wait, d.Err)
	}
	if want := clk.now().Add(4 * time.Second); !d.Next.Equal(want) {
		t.Fatalf("Next = %v, want %v (a's open period ends first)", d.Next, want)
	}
	clk.advance(4 * time.Second)
	d = s.Decide()
	if len(d.Entries) != 1 || d.Records[0] != recs[0] || !d.Entries[0].Gated {
		t.Fatalf("at a's open end: %d entries (%s), want a, gated for its trial", len(d.Entries), states(d))
	}
}

// TestDecide_UnreachableDoesNotHoldRequests is defect 9c: one READY
// endpoint that failed its probe plus one that never connected (transient
// failure) leave nothing pending: requests fail with the reason instead of
// waiting. Still connecting, it would be pending.
func TestDecide_UnreachableDoesNotHoldRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PanicThresholdPercent = 0
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(cfg, Options{Probing: true, Warmup: true, Breaker: testBreaker(), Now: clk.now})
	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	a, b := s.Get("a"), s.Get("b")
	connect(s, a, false)
	s.SetConn(b, ConnConnecting)
	if d := s.Decide(); !d.Wait {
		t.Fatalf("b making its first connection: wait=%v err=%v, want wait", d.Wait, d.Err)
	}
	s.SetConn(b, ConnFailure)
	d := s.Decide()
	if d.Wait || !errors.Is(d.Err, ErrNoUsableEndpoint) {
		t.Fatalf("wait=%v err=%v, want the error", d.Wait, d.Err)
	}
	if got, want := d.Err.Error(), "no usable endpoint among 2: 1 unhealthy, 0 ejected by breaker, 1 not connected: no usable endpoint"; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
}

// TestSlowStart_Rules pins when an endpoint ramps (Envoy's slow start:
// a host added to the cluster, and one that passes its health check again
// after failing it, ramps over the window): a new endpoint, a reconnected
// one, one recovering from unhealthy; not the endpoints of the first
// update on their first connection (they were serving before the channel
// existed), not one re-added soon after it left (registry churn), not one
// whose breaker closes again.
func TestSlowStart_Rules(t *testing.T) {
	window := time.Duration(DefaultConfig().SlowStart.Window)
	ramping := func(s *Set, key string) bool {
		s.Decide()
		return s.Results()[key].Ramping
	}
	t.Run("first update does not ramp", func(t *testing.T) {
		s, _, _ := newSet(t, 2, DefaultConfig())
		if ramping(s, "a") {
			t.Error("endpoint of the first update ramps on its first connection")
		}
	})
	t.Run("new endpoint ramps", func(t *testing.T) {
		s, clk, _ := newSet(t, 2, DefaultConfig())
		s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "z", Weight: 4}})
		z := s.Get("z")
		connect(s, z, true)
		d := s.Decide()
		if r := s.Results()["z"]; !r.Ramping || r.Weight != 4*0.1 {
			t.Fatalf("new endpoint: %+v, want ramping at minWeightPercent 10 %% of 4", r)
		}
		if want := clk.now().Add(500 * time.Millisecond); !d.Next.Equal(want) {
			t.Errorf("Next = %v, want the next ramp step %v", d.Next, want)
		}
		clk.advance(window / 2)
		s.Decide()
		if r := s.Results()["z"]; r.Weight != 2 {
			t.Errorf("half way through the window: weight %v, want 2", r.Weight)
		}
		clk.advance(window / 2)
		if ramping(s, "z") {
			t.Error("still ramping after the window")
		}
	})
	t.Run("reconnect ramps", func(t *testing.T) {
		s, _, recs := newSet(t, 2, DefaultConfig())
		s.SetConn(recs[0], ConnIdle)
		s.SetConn(recs[0], ConnConnecting)
		connect(s, recs[0], true)
		if !ramping(s, "a") {
			t.Error("reconnected endpoint of the first update does not ramp")
		}
	})
	t.Run("recovery from unhealthy ramps", func(t *testing.T) {
		s, _, recs := newSet(t, 2, DefaultConfig())
		s.SetHealth(recs[0], false, "NOT_SERVING")
		s.Decide()
		s.SetHealth(recs[0], true, "SERVING")
		if !ramping(s, "a") {
			t.Error("endpoint recovering from unhealthy does not ramp")
		}
	})
	t.Run("re-added soon does not ramp", func(t *testing.T) {
		s, clk, _ := newSet(t, 2, DefaultConfig())
		s.Decide()
		s.Update([]Spec{{Key: "a", Weight: 1}})
		clk.advance(window / 2)
		added, _ := s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
		connect(s, added[0], true)
		if ramping(s, "b") {
			t.Error("endpoint re-added within the window ramps")
		}
	})
	t.Run("breaker closing does not ramp", func(t *testing.T) {
		s, clk, recs := newSet(t, 4, DefaultConfig())
		trip(t, recs[0])
		s.Decide()
		clk.advance(5 * time.Second)
		if ramping(s, "a") {
			t.Error("endpoint whose open period ended ramps")
		}
	})
}

// TestDecide_EjectionCap: with maxEjectionPercent 50 of 4, at most 2 are
// ejected; the third tripped breaker (by key order) stays in rotation
// ungated; 0 ejects none.
func TestDecide_EjectionCap(t *testing.T) {
	for _, tc := range []struct {
		pct      float64
		ejected  int
		ungatedC bool
	}{{50, 2, true}, {0, 0, true}, {100, 3, false}} {
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent = tc.pct
		cfg.PanicThresholdPercent = 0
		s, _, recs := newSet(t, 4, cfg)
		for _, r := range recs[:3] {
			trip(t, r)
		}
		d := s.Decide()
		if d.Counts.Ejected != tc.ejected {
			t.Errorf("maxEjectionPercent %g: %d ejected (%s), want %d", tc.pct, d.Counts.Ejected, states(d), tc.ejected)
		}
		if r := d.Results[2]; (r.State == Usable && !r.Gated) != tc.ungatedC {
			t.Errorf("maxEjectionPercent %g: c is %+v, want kept in rotation ungated = %v", tc.pct, r, tc.ungatedC)
		}
	}
}

// TestDecide_WarmupHoldsBackNewConnection: a reconnected endpoint gets no
// traffic before its first probe of the new connection, and warming
// endpoints do not count toward panic mode.
func TestDecide_WarmupHoldsBackNewConnection(t *testing.T) {
	s, _, recs := newSet(t, 2, DefaultConfig())
	s.SetConn(recs[0], ConnConnecting)
	s.NewConnection(recs[0])
	s.SetConn(recs[0], ConnReady)
	d := s.Decide()
	if len(d.Entries) != 1 || d.Records[0] != recs[1] || d.Panic {
		t.Fatalf("entries %d (%s) panic %v, want only b and no panic (a warming)", len(d.Entries), states(d), d.Panic)
	}
	if d.Results[0].State != Warming {
		t.Fatalf("a is %v, want warming", d.Results[0].State)
	}
}

// TestUpdate_ReweightKnownEndpoint: a weight change of a known endpoint
// applies at the next decision.
func TestUpdate_ReweightKnownEndpoint(t *testing.T) {
	s, _, _ := newSet(t, 2, DefaultConfig())
	s.Update([]Spec{{Key: "a", Weight: 7}, {Key: "b", Weight: 1}})
	d := s.Decide()
	if d.Entries[0].Weight != 7 {
		t.Fatalf("a's weight %v after reweight, want 7", d.Entries[0].Weight)
	}
}

// TestDecide_StuckTrialNextDecision (issue 9e): a half-open breaker with
// its trial in flight refuses other requests until the trial ends (the
// breaker notifies) or times out: the decision's Next is the trial's
// timeout, so requests refused meanwhile are picked again then.
func TestDecide_StuckTrialNextDecision(t *testing.T) {
	s, clk, recs := newSet(t, 2, DefaultConfig())
	trip(t, recs[0])
	clk.advance(5 * time.Second)
	d := s.Decide()
	p := picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1}, d.Entries[:1])
	if d.Records[0] != recs[0] {
		t.Fatal("a is not the first candidate")
	}
	if _, _, err := p.Select(); err != nil { // the trial, never finished
		t.Fatal(err)
	}
	d = s.Decide()
	if want := clk.now().Add(10 * time.Second); !d.Next.Equal(want) {
		t.Fatalf("Next = %v, want the trial's timeout %v", d.Next, want)
	}
}
