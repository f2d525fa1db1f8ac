package endpointset

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
)

// The tests of this file and of mutants_set_test.go were written against
// the mutants that survived `go run ./internal/cmd/mutate ./endpointset`
// (docs/mutation.md): each pins a decision rule no earlier test checked.

// TestDecide_LostConnection: an endpoint that was connected and is
// reconnecting (idle or connecting again) is disconnected, not "making its
// first connection", so it counts against panic mode; requests wait for
// it, unless it is in transient failure. One never connected is pending.
func TestDecide_LostConnection(t *testing.T) {
	for _, tc := range []struct {
		conn    Conn
		reason  string
		waiting bool
	}{
		{ConnIdle, "not connected (idle)", true},
		{ConnConnecting, "not connected (connecting)", true},
		{ConnFailure, "not connected (transient-failure)", false},
	} {
		s, _, recs := newSet(t, 1, DefaultConfig())
		s.SetConn(recs[0], tc.conn)
		d := s.Decide()
		if r := d.Results[0]; r.State != Disconnected || r.Reason != tc.reason {
			t.Errorf("%v after being ready: %v %q, want disconnected %q", tc.conn, r.State, r.Reason, tc.reason)
		}
		if d.Wait != tc.waiting || (d.Err == nil) != tc.waiting || d.Panic {
			t.Errorf("%v after being ready: wait %v err %v panic %v, want wait %v (or the error) and no panic", tc.conn, d.Wait, d.Err, d.Panic, tc.waiting)
		}
	}
	s, _, _ := newSet(t, 0, DefaultConfig())
	s.Update([]Spec{{Key: "a", Weight: 1}})
	s.SetConn(s.Get("a"), ConnConnecting)
	s.SetConn(s.Get("a"), ConnIdle) // gave up its first attempt: grpc-go goes IDLE
	if d := s.Decide(); d.Results[0].State != Connecting || !d.Wait || d.Err != nil {
		t.Errorf("never connected, idle: %v wait %v err %v, want connecting and wait", d.Results[0].State, d.Wait, d.Err)
	}
}

// TestDecide_EjectionCapRounding: the cap is maxEjectionPercent of all
// endpoints rounded down, at least one when the percentage is above 0;
// endpoints beyond it stay in rotation ungated, say why, and are counted.
func TestDecide_EjectionCapRounding(t *testing.T) {
	for _, tc := range []struct {
		pct              float64
		n, tripped, want int
	}{{1, 4, 2, 1}, {66, 3, 3, 1}, {67, 3, 3, 2}, {0, 3, 3, 0}, {100, 3, 3, 3}} {
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent, cfg.PanicThresholdPercent = tc.pct, 0
		s, _, recs := newSet(t, tc.n, cfg)
		for _, r := range recs[:tc.tripped] {
			trip(t, r)
		}
		d := s.Decide()
		kept := tc.tripped - tc.want
		if d.Counts.Ejected != tc.want || d.Counts.KeptByCap != kept {
			t.Errorf("maxEjectionPercent %g of %d, %d tripped: %d ejected, %d kept by cap; want %d and %d", tc.pct, tc.n, tc.tripped, d.Counts.Ejected, d.Counts.KeptByCap, tc.want, kept)
			continue
		}
		for i, r := range d.Results[tc.want:tc.tripped] {
			if r.State != Usable || r.Gated || !r.Picked || !strings.Contains(r.Reason, "kept in rotation by maxEjectionPercent") {
				t.Errorf("maxEjectionPercent %g: %s beyond the cap is %+v, want usable, ungated, picked, saying why", tc.pct, recs[tc.want+i].Key, r)
			}
		}
	}
}

// TestDecide_PanicBoundaries: panic mode needs something connected to pick
// from; a single connected endpoint that is unhealthy is 0 % usable, below
// any threshold above 0; a share just below the threshold panics, one at
// it does not.
func TestDecide_PanicBoundaries(t *testing.T) {
	s, _, recs := newSet(t, 1, DefaultConfig())
	s.SetHealth(recs[0], false, "NOT_SERVING")
	if d := s.Decide(); !d.Panic || len(d.Entries) != 1 || d.Entries[0].Gated {
		t.Errorf("one endpoint, unhealthy: panic %v, %d entries; want panic over it", d.Panic, len(d.Entries))
	}

	cfg := DefaultConfig()
	cfg.PanicThresholdPercent = 1
	s, _, recs = newSet(t, 2, cfg)
	for _, r := range recs {
		s.SetHealth(r, false, "NOT_SERVING")
	}
	if d := s.Decide(); !d.Panic {
		t.Errorf("threshold 1 %%, nothing usable: no panic")
	}

	s, _, recs = newSet(t, 2, DefaultConfig())
	for _, r := range recs {
		s.SetConn(r, ConnFailure)
	}
	if d := s.Decide(); d.Panic || !errors.Is(d.Err, ErrNoUsableEndpoint) {
		t.Errorf("nothing connected: panic %v err %v, want no panic and the error", d.Panic, d.Err)
	}

	for _, tc := range []struct {
		threshold float64
		panic     bool
	}{{67, true}, {66, false}} { // 2 of 3 usable is 66.7 %
		cfg := DefaultConfig()
		cfg.PanicThresholdPercent = tc.threshold
		s, _, recs := newSet(t, 3, cfg)
		s.SetHealth(recs[0], false, "NOT_SERVING")
		if d := s.Decide(); d.Panic != tc.panic {
			t.Errorf("2 of 3 usable, threshold %g: panic %v, want %v", tc.threshold, d.Panic, tc.panic)
		}
	}
}

// TestDecide_ReasonsAndPicked: every endpoint's result says why it is in
// its state and whether it is a candidate; slow start is counted.
func TestDecide_ReasonsAndPicked(t *testing.T) {
	s, _, recs := newSet(t, 3, DefaultConfig())
	s.SetHealth(recs[1], false, "NOT_SERVING")
	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}, {Key: "d", Weight: 4}})
	connect(s, s.Get("d"), true)
	d := s.Decide()
	want := []Result{
		{State: Usable, Reason: "ok", Weight: 1, Gated: true, Picked: true},
		{State: Unhealthy, Reason: "health probe: NOT_SERVING"},
		{State: Usable, Reason: "ok", Weight: 1, Gated: true, Picked: true},
		{State: Usable, Reason: "slow start: weight 0.4 of 4", Weight: 0.4, Ramping: true, Gated: true, Picked: true},
	}
	for i, w := range want {
		if got := d.Results[i]; got != w {
			t.Errorf("%s: %+v, want %+v", s.Records()[i].Key, got, w)
		}
	}
	if d.Counts.Ramping != 1 || d.Counts.Usable != 3 || d.Counts.Unhealthy != 1 {
		t.Errorf("counts %+v, want 3 usable, 1 ramping, 1 unhealthy", d.Counts)
	}
	// In panic mode the unhealthy endpoint is picked and keeps its reason.
	s.SetHealth(recs[0], false, "NOT_SERVING")
	s.SetHealth(recs[2], false, "NOT_SERVING")
	d = s.Decide()
	if r := d.Results[1]; !d.Panic || r.State != Unhealthy || !r.Picked || r.Reason != "health probe: NOT_SERVING" {
		t.Errorf("panic %v, b %+v; want b picked in panic mode, still unhealthy with its reason", d.Panic, r)
	}
}

// TestDecide_NextForBreakers: an open breaker is decided again at the end
// of its open period, however long after the Set's start it tripped; a
// half-open breaker with no trial in flight needs no timed decision (the
// next request is the next trial).
func TestDecide_NextForBreakers(t *testing.T) {
	s, clk, recs := newSet(t, 4, DefaultConfig())
	clk.advance(time.Minute)
	trip(t, recs[0])
	if d := s.Decide(); !d.Next.Equal(clk.now().Add(5 * time.Second)) {
		t.Fatalf("tripped a minute after the start: Next %v, want the open end %v", d.Next, clk.now().Add(5*time.Second))
	}
	clk.advance(5 * time.Second)
	br := recs[0].Hot.Breaker()
	tk, ok := br.Allow()
	if !ok {
		t.Fatal("no trial after the open period")
	}
	br.Record(tk, true) // 1 of 3 trials succeeded, none in flight
	if st := br.Snapshot(); st.State != breaker.HalfOpen || st.TrialInFlight {
		t.Fatalf("breaker %+v, want half-open with no trial in flight", st)
	}
	clk.advance(time.Second)
	if d := s.Decide(); !d.Next.IsZero() {
		t.Fatalf("half-open with no trial in flight: Next %v, want none", d.Next)
	}
}

// TestSlowStart_Shape pins Envoy's ramp: time_factor counts at least one
// second, the floor is minWeightPercent exactly, aggression is the root,
// minWeightPercent 100 disables the ramp, and a window under 1s (where the
// 1s floor makes the factor 1 at once) does not ramp.
func TestSlowStart_Shape(t *testing.T) {
	for _, tc := range []struct {
		name       string
		window     time.Duration
		aggression float64
		minPct     float64
		wantW      float64
		wantStep   time.Duration
	}{
		{"1s floor of the time factor", 2 * time.Second, 1, 10, 0.5 * 4, 100 * time.Millisecond},
		{"minWeightPercent floor", 10 * time.Second, 1, 30, 0.3 * 4, 500 * time.Millisecond},
		{"aggression 2 is the square root", 16 * time.Second, 2, 10, 0.25 * 4, 800 * time.Millisecond},
		{"minWeightPercent 100: no ramp", 10 * time.Second, 1, 100, 4, 0},
		{"window under 1s", 500 * time.Millisecond, 1, 10, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.SlowStart = SlowStartConfig{Window: config.Duration(tc.window), Aggression: tc.aggression, MinWeightPercent: tc.minPct}
			s, clk, _ := newSet(t, 2, cfg)
			s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "z", Weight: 4}})
			connect(s, s.Get("z"), true)
			d := s.Decide()
			r := s.Results()["z"]
			if r.Weight != tc.wantW || r.Ramping != (tc.wantStep > 0) {
				t.Fatalf("weight %v ramping %v, want %v ramping %v", r.Weight, r.Ramping, tc.wantW, tc.wantStep > 0)
			}
			if tc.wantStep > 0 && !d.Next.Equal(clk.now().Add(tc.wantStep)) {
				t.Fatalf("Next %v, want the next step %v", d.Next, clk.now().Add(tc.wantStep))
			}
		})
	}
}

// TestStrings: the names used in reasons, logs and the snapshot.
func TestStrings(t *testing.T) {
	conns := map[Conn]string{ConnIdle: "idle", ConnConnecting: "connecting", ConnReady: "ready", ConnFailure: "transient-failure", Conn(7): "Conn(7)"}
	for c, want := range conns {
		if got := c.String(); got != want {
			t.Errorf("Conn %d: %q, want %q", uint8(c), got, want)
		}
	}
	states := []string{"usable", "connecting", "disconnected", "warming", "unhealthy", "ejected", "State(6)"}
	for i, want := range states {
		if got := State(i).String(); got != want {
			t.Errorf("State %d: %q, want %q", i, got, want)
		}
	}
}
