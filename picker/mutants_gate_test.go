package picker

import (
	"errors"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// Tests of the picker's breaker accounting written against surviving
// mutants (docs/mutation.md).

// gatedEntries returns n gated entries with breakers on clk, tripping after
// one failure.
func gatedEntries(n int, cfg breaker.Config, clk func() int64) []Entry {
	es := newEntries(make([]float64, n)...)
	for i := range es {
		es[i] = Entry{Endpoint: NewEndpoint("ep", breaker.New(cfg, clk, nil)), Weight: 1, Gated: true}
	}
	return es
}

func tripOpen(t *testing.T, b *breaker.Breaker) {
	t.Helper()
	for b.State() != breaker.Open {
		tk, ok := b.Allow()
		if !ok {
			t.Fatal("breaker refused before opening")
		}
		b.Record(tk, false)
	}
}

// TestPicker_FinishFeedsBreaker: a success resets the consecutive-failure
// count, a half-open trial that ends with no verdict (Finish NoVerdict or
// Abort) lets the next request in as the trial, and successful trials
// close the breaker.
func TestPicker_FinishFeedsBreaker(t *testing.T) {
	seeded(t, 33)
	now := int64(time.Hour)
	clk := func() int64 { return now }
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures, cfg.FailureRatio = 3, 0
	es := gatedEntries(1, cfg, clk)
	br := es[0].Endpoint.Breaker()
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	send := func(o Outcome) {
		t.Helper()
		i, tok, err := p.Select()
		if err != nil {
			t.Fatalf("Select (breaker %v): %v", br.State(), err)
		}
		p.Finish(i, tok, o)
	}
	for _, v := range []Verdict{Failure, Failure, Success, Failure, Failure} {
		send(Outcome{Verdict: v})
	}
	if st := br.State(); st != breaker.Closed {
		t.Fatalf("breaker %v after 2 failures, a success and 2 failures (threshold 3), want closed", st)
	}
	send(Outcome{Verdict: Failure})
	if st := br.State(); st != breaker.Open {
		t.Fatalf("breaker %v after 3 failures in a row, want open", st)
	}
	now += int64(time.Duration(cfg.OpenDuration))
	// The trial ends without a verdict, twice: the next request becomes
	// the trial each time.
	send(Outcome{Verdict: NoVerdict})
	i, tok, err := p.Select()
	if err != nil {
		t.Fatalf("Select after a trial ended with no verdict: %v", err)
	}
	p.Abort(i, tok)
	for n := range cfg.HalfOpenRequests {
		if st := br.State(); st != breaker.HalfOpen {
			t.Fatalf("breaker %v before trial %d, want half-open", st, n+1)
		}
		send(Outcome{Verdict: Success})
	}
	if st := br.State(); st != breaker.Closed {
		t.Fatalf("breaker %v after %d successful trials, want closed", st, cfg.HalfOpenRequests)
	}
}

// TestToken_Same: two requests admitted in the same breaker phase carry the
// same admission; across a transition, or gated and ungated, they do not.
func TestToken_Same(t *testing.T) {
	seeded(t, 34)
	now := int64(time.Hour)
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures, cfg.HalfOpenRequests = 1, 1
	es := gatedEntries(1, cfg, func() int64 { return now })
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	sel := func() Token {
		t.Helper()
		_, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, b := sel(), sel()
	if !a.Same(b) {
		t.Fatal("two requests of one closed phase are not Same")
	}
	p.Finish(0, a, Outcome{Verdict: Failure}) // open
	p.Finish(0, b, Outcome{})
	now += int64(time.Duration(cfg.OpenDuration))
	trial := sel()
	p.Finish(0, trial, Outcome{Verdict: Success}) // closed again: a new phase
	c := sel()
	if a.Same(c) || c.Same(a) {
		t.Fatal("requests of two closed phases with a trip between them are Same")
	}
	ungated := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, newEntries(1))
	_, u, _ := ungated.Select()
	if c.Same(u) || !u.Same(Token{}) {
		t.Fatal("a gated and an ungated request are Same, or two ungated ones are not")
	}
}

// TestPicker_LostTrialRaceGoesElsewhere: between Admits and Allow another
// request can take an endpoint's half-open trial. The picker must not send
// this request there (its breaker refused it) but scan for an endpoint that
// admits it. The breaker's clock plays the other request: its first read
// during Select (Admits of the open breaker) takes the trial.
func TestPicker_LostTrialRaceGoesElsewhere(t *testing.T) {
	seeded(t, 35)
	now := int64(time.Hour)
	var steal func()
	clk := func() int64 {
		if f := steal; f != nil {
			steal = nil
			f()
		}
		return now
	}
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures = 1
	es := gatedEntries(2, cfg, clk)
	a, b := es[0].Endpoint, es[1].Endpoint
	tripOpen(t, a.Breaker())
	b.inFlight.Store(5) // a, idle, wins the comparison
	now += int64(time.Duration(cfg.OpenDuration))
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	stolen := false
	steal = func() { _, stolen = a.Breaker().Allow() }
	i, tok, err := p.Select()
	if !stolen {
		t.Fatal("the other request did not take a's trial: the test's race did not happen")
	}
	if err != nil || i != 1 || a.InFlight() != 0 || b.InFlight() != 6 {
		t.Fatalf("Select = %d, %v; in flight a %d b %d; want b (1) counted, a (trial taken) untouched", i, err, a.InFlight(), b.InFlight())
	}
	p.Finish(i, tok, Outcome{Verdict: Success})
}

// TestPicker_ScanFindsTheOnlyAdmitted: with 30 endpoints of which 29 are
// ejected, the draws (at most 2 x MaxChoiceCount + 2) often miss the one
// that admits requests; the scan from a random start must find it, whether
// it is gated (closed breaker) or kept in rotation ungated despite an open
// breaker (the ejection cap), and without allocating.
func TestPicker_ScanFindsTheOnlyAdmitted(t *testing.T) {
	seeded(t, 36)
	now := int64(time.Hour)
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures = 1
	for _, kept := range []bool{false, true} {
		for _, k := range []int{0, 13, 29} {
			es := gatedEntries(30, cfg, func() int64 { return now })
			for i := range es {
				if i != k || kept {
					tripOpen(t, es[i].Endpoint.Breaker())
				}
			}
			es[k].Gated = !kept
			p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
			for range 100 {
				i, tok, err := p.Select()
				if err != nil || i != k {
					t.Fatalf("kept by cap %v: Select = %d, %v; want %d, the only endpoint admitting requests", kept, i, err, k)
				}
				p.Finish(i, tok, Outcome{Verdict: Success})
			}
			allocs := testing.AllocsPerRun(100, func() {
				i, tok, _ := p.Select()
				p.Finish(i, tok, Outcome{Verdict: Success})
			})
			if allocs != 0 {
				t.Fatalf("Select+Finish with 29 of 30 ejected: %v allocs, want 0", allocs)
			}
		}
	}
	es := gatedEntries(30, cfg, func() int64 { return now })
	for i := range es {
		tripOpen(t, es[i].Endpoint.Breaker())
	}
	if _, _, err := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es).Select(); !errors.Is(err, ErrAllRejected) {
		t.Fatalf("Select with all 30 ejected: %v, want ErrAllRejected", err)
	}
}

// TestPicker_MaxChoiceCountComparesEveryAdmitted: with choiceCount 10 and
// 22 endpoints of which 12 are ejected, ejected draws are replaced until
// the 10 admitted ones are all compared (the draw bound, 22, allows it), so
// the idle one always wins over the 9 busy ones.
func TestPicker_MaxChoiceCountComparesEveryAdmitted(t *testing.T) {
	seeded(t, 37)
	now := int64(time.Hour)
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures = 1
	es := gatedEntries(22, cfg, func() int64 { return now })
	const idle = 17
	for i := range es {
		switch {
		case i%2 == 0 || i == 21:
			tripOpen(t, es[i].Endpoint.Breaker())
		case i != idle:
			es[i].Endpoint.inFlight.Store(3)
		}
	}
	p := New(Config{ChoiceCount: MaxChoiceCount, ActiveRequestBias: 1}, es)
	for n := range 300 {
		i, tok, err := p.Select()
		if err != nil || i != idle {
			t.Fatalf("pick %d: Select = %d, %v; want the idle endpoint %d", n, i, err, idle)
		}
		p.Finish(i, tok, Outcome{Verdict: Success})
	}
}
