package endpointset

import (
	"errors"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// Regression tests of the engine defects of issue 21 (a, c, d, h, i, j).

// selectN selects n requests through a picker over d's entries, as n
// concurrent requests of an adapter would (none finishes before the last
// is picked), and returns the admitted ones.
func selectN(d Decision, n int) (p *picker.Picker, admitted []picker.Token, idx []int) {
	p = picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1}, d.Entries)
	for range n {
		if len(d.Entries) == 0 {
			break
		}
		i, tok, err := p.Select()
		if err != nil {
			continue
		}
		admitted, idx = append(admitted, tok), append(idx, i)
	}
	return p, admitted, idx
}

// TestDecide_StuckTrialPastTimeoutNoPastNext is defect a: a half-open
// trial that outlived trialTimeout, with nothing calling Allow since,
// made every decision return Next = trial start + timeout, already past,
// and adapters decided again at once, for ever (the gRPC adapter
// republished a picker every millisecond). Such a trial no longer holds
// anything back: the next request is admitted, so no Next comes from it.
func TestDecide_StuckTrialPastTimeoutNoPastNext(t *testing.T) {
	s, clk, recs := newSet(t, 2, DefaultConfig())
	trip(t, recs[0])
	clk.advance(5 * time.Second)
	d := s.Decide()
	p := picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1}, d.Entries[:1])
	if _, _, err := p.Select(); err != nil { // the trial, never finished
		t.Fatal(err)
	}
	clk.advance(11 * time.Second) // past trialTimeout (10s)
	d = s.Decide()
	if !d.Next.IsZero() && !d.Next.After(clk.now()) {
		t.Fatalf("Next = %v, not after now %v: the adapter would decide again at once, for ever", d.Next, clk.now())
	}
	if !recs[0].Hot.Breaker().Admits() {
		t.Fatal("the stuck trial still holds the next request back")
	}
}

// TestRecovery_OneEndpointNotWorseThanOutage is defect c: with one
// endpoint, while its breaker was open panic mode admitted every request,
// but once the open period ended the half-open breaker admitted one trial
// at a time, so 9 of 10 concurrent requests failed ("all 1 usable
// endpoints ejected") for several trial round trips. While the endpoints
// on trial are all the channel has, panic mode goes on and their breakers
// admit every request, whose outcomes still close or reopen them.
func TestRecovery_OneEndpointNotWorseThanOutage(t *testing.T) {
	for _, trialsOK := range []bool{true, false} {
		s, clk, recs := newSet(t, 1, DefaultConfig())
		br := recs[0].Hot.Breaker()
		trip(t, recs[0])
		d := s.Decide()
		if _, adm, _ := selectN(d, 10); len(adm) != 10 {
			t.Fatalf("breaker open (panic): %d of 10 admitted, want 10", len(adm))
		}
		clk.advance(5 * time.Second) // the open period ends: Next
		d = s.Decide()
		p1, adm1, idx1 := selectN(d, 5)
		// The first request moved the breaker to half-open, which asks
		// for a decision: the adapter publishes a new picker.
		d = s.Decide()
		p2, adm2, idx2 := selectN(d, 5)
		if got := len(adm1) + len(adm2); got != 10 {
			t.Fatalf("after the open period (trials %v): %d of 10 admitted, want 10 (as many as during the outage)", trialsOK, got)
		}
		// Outcomes still reach the breaker.
		p1.Finish(idx1[0], adm1[0], picker.Outcome{Verdict: verdict(trialsOK)})
		for i := 1; i < len(adm1); i++ {
			p1.Finish(idx1[i], adm1[i], picker.Outcome{Verdict: picker.Success})
		}
		for i := range adm2 {
			p2.Finish(idx2[i], adm2[i], picker.Outcome{Verdict: picker.Success})
		}
		want := breaker.Closed
		if !trialsOK {
			want = breaker.Open
		}
		if st := br.State(); st != want {
			t.Fatalf("trials ok=%v: breaker %v after the requests ended, want %v", trialsOK, st, want)
		}
		d = s.Decide()
		if trialsOK && (d.Panic || !d.Entries[0].Gated) {
			t.Fatalf("breaker closed: panic %v gated %v, want gated and no panic", d.Panic, d.Entries[0].Gated)
		}
	}
}

func verdict(ok bool) picker.Verdict {
	if ok {
		return picker.Success
	}
	return picker.Failure
}

// TestRecovery_TrialsOneAtATimeWithOtherUsable: the rule of defect c does
// not apply while enough other endpoints are usable: a recovering
// endpoint's breaker admits one trial at a time, and the others take the
// rest.
func TestRecovery_TrialsOneAtATimeWithOtherUsable(t *testing.T) {
	s, clk, recs := newSet(t, 3, DefaultConfig())
	trip(t, recs[0])
	clk.advance(5 * time.Second)
	d := s.Decide()
	if d.Panic {
		t.Fatalf("2 of 3 usable: panic %s", states(d))
	}
	br := recs[0].Hot.Breaker()
	if _, ok := br.Allow(); !ok {
		t.Fatal("no first trial")
	}
	d = s.Decide()
	if d.Panic {
		t.Fatalf("2 of 3 usable, a on trial: panic %s", states(d))
	}
	if br.Admits() {
		t.Fatal("a second concurrent trial is admitted with other usable endpoints")
	}
	if _, adm, _ := selectN(d, 10); len(adm) != 10 {
		t.Fatalf("%d of 10 admitted, want 10 (b and c)", len(adm))
	}
}

// TestDecide_PanicSkipsWarming is defect d: panic mode picked among every
// connected endpoint, including those still waiting for the first probe
// of their connection, which warm-up promises to hold back.
func TestDecide_PanicSkipsWarming(t *testing.T) {
	s, _, recs := newSet(t, 4, DefaultConfig())
	s.SetHealth(recs[0], false, "NOT_SERVING")
	s.SetHealth(recs[1], false, "NOT_SERVING")
	s.SetConn(recs[3], ConnConnecting)
	s.NewConnection(recs[3])
	s.SetConn(recs[3], ConnReady) // d: reconnected, first probe pending
	d := s.Decide()
	if !d.Panic {
		t.Fatalf("1 of 3 considered usable: no panic (%s)", states(d))
	}
	for _, r := range d.Records {
		if r == recs[3] {
			t.Fatalf("panic mode picks d, which is warming (%s)", states(d))
		}
	}
	if len(d.Entries) != 3 {
		t.Fatalf("%d entries, want a, b, c", len(d.Entries))
	}
}

// TestDecide_EjectionCapKeepsEarlierTrips is defect h: the cap kept the
// first ejected endpoints in key order, so a new trip on a lower key put
// an endpoint ejected earlier back in rotation, ungated. Envoy keeps
// earlier ejections; the cap keeps the latest trips in rotation.
func TestDecide_EjectionCapKeepsEarlierTrips(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEjectionPercent, cfg.PanicThresholdPercent = 25, 0 // 1 of 4
	s, clk, recs := newSet(t, 4, cfg)
	trip(t, recs[3])
	if d := s.Decide(); d.Results[3].State != Ejected {
		t.Fatalf("d tripped: %s, want d ejected", states(d))
	}
	clk.advance(time.Second)
	trip(t, recs[0])
	d := s.Decide()
	if d.Results[3].State != Ejected || d.Results[0].State != Usable || d.Results[0].Gated {
		t.Fatalf("a tripped after d: %s (a %+v), want d still ejected and a kept in rotation ungated", states(d), d.Results[0])
	}
}

// TestUpdate_RejoinKeepsBreaker is defect i: an endpoint that left the
// resolver's set and came back got a fresh breaker, so one churning in the
// registry escaped ejection. Within breaker.maxOpenDuration of its removal
// it gets its breaker back, open period and back-off level included.
func TestUpdate_RejoinKeepsBreaker(t *testing.T) {
	s, clk, recs := newSet(t, 2, DefaultConfig())
	trip(t, recs[0])
	s.Update([]Spec{{Key: "b", Weight: 1}})
	clk.advance(time.Second)
	added, _ := s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	if len(added) != 1 {
		t.Fatalf("%d added, want a", len(added))
	}
	connect(s, added[0], true)
	if snap := added[0].Hot.Breaker().Snapshot(); snap.State != breaker.Open || snap.Trips != 1 {
		t.Fatalf("a re-added 1s after its trip: breaker %+v, want open, trip 1", snap)
	}
	if d := s.Decide(); d.Results[0].State != Ejected {
		t.Fatalf("a re-added: %s, want ejected", states(d))
	}

	// Past the window, a re-added endpoint starts afresh.
	s.Update([]Spec{{Key: "b", Weight: 1}})
	clk.advance(2 * time.Minute) // breaker.maxOpenDuration
	added, _ = s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	if snap := added[0].Hot.Breaker().Snapshot(); snap.State != breaker.Closed || snap.Transitions != 0 {
		t.Fatalf("a re-added past maxOpenDuration: breaker %+v, want a fresh one", snap)
	}

	// A new breaker configuration gives every endpoint a fresh breaker,
	// remembered ones included.
	trip(t, added[0])
	s.Update([]Spec{{Key: "b", Weight: 1}})
	bc := *testBreaker()
	bc.OpenDuration *= 2
	s.SetConfig(DefaultConfig(), Options{Probing: true, Warmup: true, Breaker: &bc})
	added, _ = s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	if st := added[0].Hot.Breaker().State(); st != breaker.Closed {
		t.Fatalf("a re-added after a breaker config change: %v, want a fresh breaker", st)
	}
}

// TestUpdate_RememberedBreakersBounded: the breakers kept for removed
// endpoints are bounded in number, oldest removals forgotten first.
func TestUpdate_RememberedBreakersBounded(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(DefaultConfig(), Options{Breaker: testBreaker(), Now: clk.now})
	s.maxRemoved = 16 // the rule, cheaply; the constant is maxRemoved
	n := s.maxRemoved + 10
	for i := range n {
		k := string(rune(0x4e00 + i))
		added, _ := s.Update([]Spec{{Key: k, Weight: 1}})
		s.SetConn(added[0], ConnReady)
		trip(t, added[0])
		s.Update(nil)
	}
	if len(s.removed) > s.maxRemoved {
		t.Fatalf("%d removed endpoints remembered, want at most %d", len(s.removed), s.maxRemoved)
	}
	first, _ := s.Update([]Spec{{Key: string(rune(0x4e00)), Weight: 1}})
	if first[0].Hot.Breaker().State() != breaker.Closed {
		t.Fatal("the oldest removal is still remembered past the bound")
	}
	last, _ := s.Update([]Spec{{Key: string(rune(0x4e00 + n - 1)), Weight: 1}})
	if last[0].Hot.Breaker().State() != breaker.Open {
		t.Fatal("the latest removal is forgotten")
	}
}

// TestDecide_WaitsWhileReconnecting is defect j (1), the rule README
// states: with nothing usable, requests wait while some endpoint is making
// a connection, its first or a new one after losing the last (grpc-go's
// aggregation: CONNECTING if any child is CONNECTING, and pick_first
// reports CONNECTING on a reconnect until an attempt fails), and fail once
// every connection attempt has failed (TRANSIENT_FAILURE is sticky).
func TestDecide_WaitsWhileReconnecting(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PanicThresholdPercent = 0
	s, _, recs := newSet(t, 2, cfg)
	s.SetHealth(recs[0], false, "NOT_SERVING")
	s.SetConn(recs[1], ConnIdle)
	s.SetConn(recs[1], ConnConnecting)
	if d := s.Decide(); !d.Wait || d.Err != nil {
		t.Fatalf("b reconnecting, a unhealthy: wait %v err %v, want wait", d.Wait, d.Err)
	}
	s.SetConn(recs[1], ConnFailure)
	if d := s.Decide(); d.Wait || !errors.Is(d.Err, ErrNoUsableEndpoint) {
		t.Fatalf("b failed to reconnect: wait %v err %v, want the error", d.Wait, d.Err)
	}
}

// TestDecide_MaxEjectionPercentZero is defect j (2), the rule README
// states: maxEjectionPercent 0 ejects nothing (grpc-go's outlier
// detection: "ejected share >= max_ejection_percent: stop"), the breakers
// still trip and report; above 0 at least one endpoint may always be
// ejected (Envoy: "will eject at least one host regardless of the value").
func TestDecide_MaxEjectionPercentZero(t *testing.T) {
	for _, tc := range []struct {
		pct  float64
		want int
	}{{0, 0}, {1, 1}} {
		cfg := DefaultConfig()
		cfg.MaxEjectionPercent, cfg.PanicThresholdPercent = tc.pct, 0
		s, _, recs := newSet(t, 3, cfg)
		trip(t, recs[0])
		d := s.Decide()
		if d.Counts.Ejected != tc.want {
			t.Errorf("maxEjectionPercent %g: %d ejected, want %d", tc.pct, d.Counts.Ejected, tc.want)
		}
		if tc.want == 0 && (d.Counts.KeptByCap != 1 || d.Results[0].Gated || recs[0].Hot.Breaker().State() != breaker.Open) {
			t.Errorf("maxEjectionPercent 0: kept %d, a %+v breaker %v; want a kept in rotation ungated, its breaker open", d.Counts.KeptByCap, d.Results[0], recs[0].Hot.Breaker().State())
		}
	}
}
