package picker

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// sampling makes *now the coarse clock for one test (with fakeNanotime),
// so that the sampling rule applies as it does under load on the real one.
func sampling(t *testing.T, now *int64) {
	old := fakeCoarse
	fakeCoarse = func() int64 { return *now }
	t.Cleanup(func() { fakeCoarse = old })
}

func latencyPicker(es []Entry) *Picker {
	return New(DefaultConfig(), es)
}

// TestSample_LowRateTimesEvery: an endpoint that gets a request less often
// than every sampleAge has every request timed, on the coarse clock too
// (however long the request: it is the picks that are spaced);
// on a real reading (the coarse clock stopped) every request is timed
// whatever the rate.
func TestSample_LowRateTimesEvery(t *testing.T) {
	now := int64(time.Hour)
	fakeNanotime(t, &now)
	p := latencyPicker(newEntries(1))
	for i := range 100 { // real readings, the clock frozen: all timed
		j, tok, _ := p.Select()
		if !tok.timed {
			t.Fatalf("pick %d on a real reading was not timed", i)
		}
		p.Finish(j, tok, Outcome{Verdict: Success, Timing: Timed})
	}
	sampling(t, &now)
	for i := range 100 {
		now += sampleAge - int64(3*time.Millisecond)
		j, tok, _ := p.Select()
		if !tok.timed {
			t.Fatalf("pick %d, %v after the last one, was not timed", i, time.Duration(sampleAge))
		}
		now += int64(3 * time.Millisecond)
		p.Finish(j, tok, Outcome{Verdict: Success, Timing: Timed})
		if got := p.Entry(0).Endpoint.latency.stamp.Load(); got != now {
			t.Fatalf("pick %d: last sample at %d, want %d", i, got, now)
		}
		now += int64(time.Millisecond)
	}
}

// TestSample_HighRateSamples: on a coarse clock that does not move (a burst
// within a tick), an endpoint's requests are timed every sampleEvery-th
// pick, and the first sampleAge after the last sampled by age.
func TestSample_HighRateSamples(t *testing.T) {
	now := int64(time.Hour)
	fakeNanotime(t, &now)
	sampling(t, &now)
	p := latencyPicker(newEntries(1))
	var timed []uint64
	for n := uint64(1); n <= 100*sampleEvery; n++ {
		j, tok, _ := p.Select()
		if tok.timed {
			timed = append(timed, n)
		}
		p.Finish(j, tok, Outcome{Verdict: Success, Timing: Timed})
	}
	// The first pick: no sample yet. Then every sampleEvery-th.
	if len(timed) != 101 || timed[0] != 1 || timed[1] != sampleEvery || timed[100] != 100*sampleEvery {
		t.Fatalf("timed picks %v, want 1 and every %dth", timed, sampleEvery)
	}
	now += sampleAge
	if _, tok, _ := p.Select(); !tok.timed {
		t.Fatalf("the first pick %v after the last sample was not timed", time.Duration(sampleAge))
	}
}

// TestSample_UntimedLowerBound: a request that was not sampled and is cut
// short still raises the estimate (by its duration from the coarse start,
// less a tick); its breaker outcome and in-flight count are kept.
func TestSample_UntimedLowerBound(t *testing.T) {
	now := int64(time.Hour)
	es, p := justSampled(t, &now)
	ms := float64(time.Millisecond)
	_, tok, _ := p.SelectBounded(true)
	if tok.timed {
		t.Fatal("pick right after a sampled one was timed")
	}
	if es[0].Endpoint.InFlight() != 1 || es[0].Endpoint.ages[ageSlot(now)].Load() != 1 {
		t.Fatal("an untimed bounded request is not counted in flight and in its age slot")
	}
	now += int64(100 * time.Millisecond)
	p.Finish(0, tok, Outcome{Timing: LowerBound})
	if got := es[0].Endpoint.latency.value(now, p.rate); got <= 5*ms {
		t.Fatalf("estimate %v after an untimed 100ms lower bound, want above 5ms", time.Duration(got))
	}
	if es[0].Endpoint.InFlight() != 0 || es[0].Endpoint.ages[ageSlot(now-int64(100*time.Millisecond))].Load() != 0 {
		t.Fatal("an untimed request did not leave flight and its age slot")
	}
	// An untimed request that ends normally is no sample.
	before := es[0].Endpoint.latency.stamp.Load()
	es[0].Endpoint.sampleAt.Store(now)
	_, tok, _ = p.Select()
	now += int64(time.Millisecond)
	p.Finish(0, tok, Outcome{Verdict: Success, Timing: Timed})
	if tok.timed || es[0].Endpoint.latency.stamp.Load() != before {
		t.Fatal("an untimed request fed the estimate")
	}
}

// TestSample_SlowEndpointUnderLoad: 20 requests per millisecond over four
// equal endpoints (5ms), most requests not timed; one turns 10x slow. Its
// estimate must show it within 200ms and its share fall as without
// sampling (the trickle: a few requests per decay period), while a small
// fraction of requests read the real clock.
func TestSample_SlowEndpointUnderLoad(t *testing.T) {
	seeded(t, 3)
	now := int64(time.Hour)
	ms := time.Millisecond
	s := newSim(t, &now, 5*ms, 5*ms, 5*ms, 5*ms)
	sampling(t, &now)
	s.perMs = 20
	s.run(time.Second)
	timed, total := 0, 0
	count := func() {
		for _, r := range s.pending {
			total++
			if r.tok.timed {
				timed++
			}
		}
	}
	s.service[0] = 50 * ms
	s.run(200 * ms)
	count()
	e0, e1 := s.p.Entry(0).Endpoint.Latency(simDecay), s.p.Entry(1).Endpoint.Latency(simDecay)
	if e0 < trickleFactor*e1 {
		t.Fatalf("200ms after the slowdown: estimates %v (slow) and %v, want over %gx", e0, e1, trickleFactor)
	}
	s.reset()
	s.run(time.Second)
	count()
	if sh := s.share(0); sh > 0.005 {
		t.Fatalf("slow endpoint got %.2f%% of picks (%d), want under 0.5%%", 100*sh, s.picks[0])
	}
	if f := float64(timed) / float64(total); f > 0.1 {
		t.Fatalf("%.0f%% of requests in flight were timed, want under 10%%", 100*f)
	}
}

// TestSample_HungEndpointUnderLoad: TestPicker_HungEndpointLosesToSlowPeers
// at 8 requests per millisecond with sampling: the hung endpoint must lose
// within 400ms of the onset all the same.
func TestSample_HungEndpointUnderLoad(t *testing.T) {
	seeded(t, 21)
	now := int64(time.Hour)
	ms := time.Millisecond
	s := newSim(t, &now, 50*ms, 50*ms, 50*ms, 5*ms)
	sampling(t, &now)
	s.perMs = 8
	s.run(3 * time.Second)
	s.hung[3] = true
	s.run(400 * ms)
	s.reset()
	s.run(600 * ms)
	if sh := s.share(3); sh > 0.01 {
		t.Fatalf("hung endpoint got %.1f%% of picks (%d) 0.4-1s after its hang onset, want under 1%%: picks %v", 100*sh, s.picks[3], s.picks)
	}
}

// TestCoarseClock_Advance: a sampled request's real reading moves a late
// coarse clock forward, never a stopped one.
func TestCoarseClock_Advance(t *testing.T) {
	var c coarseClock
	c.advance(int64(time.Hour))
	if c.now.Load() != 0 {
		t.Fatal("advance started a stopped clock")
	}
	c.now.Store(int64(time.Hour))
	c.advance(int64(time.Hour + coarseTick))
	if c.now.Load() != int64(time.Hour) {
		t.Fatal("advance moved a clock a tick behind")
	}
	c.advance(int64(time.Hour + 5*coarseTick))
	if c.now.Load() != int64(time.Hour+5*coarseTick) {
		t.Fatal("advance left a late clock behind")
	}
}

// TestCoarseClock_TicksWhilePicking: on the real clock, fast picks start
// the ticker; while picks go on the coarse reading follows the real clock;
// once they stop, the ticker stops (the word back to 0) and no goroutine
// is left.
func TestCoarseClock_TicksWhilePicking(t *testing.T) {
	waitStopped(t)
	p := latencyPicker(newEntries(1, 1, 1))
	pick := func() {
		for range 1000 {
			i, tok, err := p.Select()
			if err != nil {
				t.Fatal(err)
			}
			p.Finish(i, tok, Outcome{Verdict: Success, Timing: Timed})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !coarse.running.Load() || coarse.now.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("fast picks did not start the coarse clock")
		}
		pick()
	}
	// The reading advances while picks go on (the ticker may run late on
	// a loaded machine, so only progress is asserted, not a bound).
	first := coarse.now.Load()
	for c := coarse.now.Load(); c == 0 || c <= first; c = coarse.now.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the coarse clock did not advance while picks went on")
		}
		pick()
	}
	if lag := Nanotime() - coarse.now.Load(); lag > int64(time.Second) {
		t.Fatalf("coarse clock %v behind while picking", time.Duration(lag))
	}
	waitStopped(t)
	goleak.VerifyNone(t)
}

// TestToken_SharedFinish: untimed tokens share a Finish only within one
// age slot epoch when tracked; the shared token's start is the epoch's
// last instant (a lower bound stays one) or, untracked, none (a lower
// bound is not timed); a timed token is never shared.
func TestToken_SharedFinish(t *testing.T) {
	now := int64(time.Hour)
	es, p := justSampled(t, &now)
	_, a, _ := p.SelectBounded(true)
	now += int64(time.Millisecond)
	_, b, _ := p.SelectBounded(true)
	_, u, _ := p.Select()
	if !a.Shareable() || !a.Same(b) || a.Same(u) {
		t.Fatal("untimed tokens of one epoch: not shareable, or tracked and untracked alike")
	}
	sh := a.Shared()
	if !sh.Same(b) || sh.start < b.start || ageSlot(sh.start) != ageSlot(a.start) {
		t.Fatalf("shared start %d for starts %d and %d: not the epoch's last instant", sh.start, a.start, b.start)
	}
	if us := u.Shared(); us.start != 0 || !us.Same(u) {
		t.Fatal("an untracked shared token kept its start")
	}
	now += 1 << ageSlotShift
	_, c, _ := p.SelectBounded(true)
	if c.Same(a) {
		t.Fatal("tracked tokens of different epochs are Same")
	}
	for _, tk := range []Token{a, b, c} {
		p.Finish(0, tk.Shared(), Outcome{Verdict: Success, Timing: Timed})
	}
	for s := range es[0].Endpoint.ages {
		if n := es[0].Endpoint.ages[s].Load(); n != 0 {
			t.Fatalf("age slot %d holds %d after shared finishes", s, n)
		}
	}
	before := es[0].Endpoint.latency.stamp.Load()
	now += int64(time.Second)
	p.Finish(0, u.Shared(), Outcome{Timing: LowerBound})
	if es[0].Endpoint.latency.stamp.Load() != before {
		t.Fatal("a lower bound finished without a start was timed")
	}
	now += sampleAge
	if _, tk, _ := p.Select(); tk.Shareable() || tk.Same(tk) {
		t.Fatal("a timed token is shareable")
	}
}

// TestCoarseClock_StartsOnlyWhenFrequent: picks spread over more than a
// window (1 500 per second here) leave the ticker stopped; startPicks
// within one window start it; it stops on its own without picks.
func TestCoarseClock_StartsOnlyWhenFrequent(t *testing.T) {
	waitStopped(t)
	base := Nanotime()
	step := int64(time.Second) / 1500
	for i := range int64(100) {
		coarse.count(base + i*step)
	}
	if coarse.running.Load() {
		t.Fatal("1 500 picks per second started the ticker")
	}
	base += 100 * step
	for i := range int64(startPicks) {
		coarse.count(base + i*startWindow/startPicks)
	}
	if !coarse.running.Load() {
		t.Fatalf("%d picks within %v did not start the ticker", startPicks, time.Duration(startWindow))
	}
	waitStopped(t)
	goleak.VerifyNone(t)
}

// waitStopped waits until the ticker has stopped (it stops within two
// blocks once picks stop).
func waitStopped(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for coarse.running.Load() || coarse.now.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the coarse clock did not stop once picks stopped")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSample_TimedTrackedSlot (regression): a timed request's age slot is
// that of its real start, at Select as at Finish, when the coarse reading
// it was picked at lies in the slot before.
func TestSample_TimedTrackedSlot(t *testing.T) {
	now := int64(time.Hour) | (1<<ageSlotShift - 1) // the last ns of a slot
	fakeNanotime(t, &now)
	coarseNow := now
	sampling(t, &coarseNow)
	now++ // the real clock in the next slot
	es := newEntries(1)
	p := latencyPicker(es)
	_, tok, _ := p.SelectBounded(true) // no sample yet: timed
	if !tok.timed || !tok.tracked {
		t.Fatal("the first bounded pick is not timed and tracked")
	}
	p.Finish(0, tok, Outcome{Verdict: Success, Timing: Timed})
	for s := range es[0].Endpoint.ages {
		if n := es[0].Endpoint.ages[s].Load(); n != 0 {
			t.Fatalf("age slot %d holds %d after the request finished", s, n)
		}
	}
}

// TestSample_StalledUnderLoad: TestPicker_StalledEndpointLosesLatencyAdvantage
// at 8 requests per millisecond, most of them not timed: a hung fast
// endpoint gets no more picks in its first second than when every request
// is timed (1110 against 1268 over 10 seeds; 639 with the latency term
// off: at this rate the stall rule holds back less than at 1 per ms).
func TestSample_StalledUnderLoad(t *testing.T) {
	sampled := hungPicksFirstSecond(t, 8, func(_ *sim, now *int64) { sampling(t, now) })
	every := hungPicksFirstSecond(t, 8, func(*sim, *int64) {
		fakeCoarse = nil // restored by the cleanup of sampling's
	})
	if float64(sampled) > 1.05*float64(every) {
		t.Errorf("hung endpoint got %d picks in the first second after its hang onset with sampling, %d with every request timed (10 seeds); want at most 1.05x", sampled, every)
	}
	t.Logf("picks to the hung endpoint in its first second: %d sampled, %d every request timed", sampled, every)
}

// justSampled returns a sampling latency picker, on the fake clock *now,
// over one endpoint whose estimate is 5ms and whose last sample was at
// *now: its next picks are not timed until sampleAge has passed.
func justSampled(t *testing.T, now *int64) ([]Entry, *Picker) {
	t.Helper()
	fakeNanotime(t, now)
	sampling(t, now)
	es := newEntries(1)
	setEstimate(&es[0].Endpoint.latency, 5*float64(time.Millisecond), *now)
	es[0].Endpoint.sampleAt.Store(*now)
	return es, latencyPicker(es)
}
