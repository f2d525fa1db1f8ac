package picker

import (
	"errors"
	"math"
	rand "math/rand/v2"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
)

// seeded makes the picker's randomness deterministic for one test.
func seeded(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	oldU, oldF := randUint64, randFloat64
	randUint64, randFloat64 = r.Uint64, r.Float64
	t.Cleanup(func() { randUint64, randFloat64 = oldU, oldF })
}

func newEntries(weights ...float64) []Entry {
	var es []Entry
	for _, w := range weights {
		es = append(es, Entry{Endpoint: NewEndpoint("ep", nil), Weight: w})
	}
	return es
}

// pickIndex selects once and returns the chosen entry's index, checking
// that exactly its in-flight counter moved; the request stays in flight
// until the returned done is called.
func pickIndex(t *testing.T, p *Picker, es []Entry) (int, func(Outcome)) {
	t.Helper()
	before := make([]int64, len(es))
	for i := range es {
		before[i] = es[i].Endpoint.InFlight()
	}
	idx, tok, err := p.Select()
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	for i := range es {
		want := before[i]
		if i == idx {
			want++
		}
		if got := es[i].Endpoint.InFlight(); got != want {
			t.Fatalf("endpoint %d in flight %d after selecting %d, want %d", i, got, idx, want)
		}
	}
	return idx, func(o Outcome) { p.Finish(idx, tok, o) }
}

// TestPicker_LowLoadSharesFollowWeights: with nothing in flight, picks
// follow weights exactly (the weighted-sampling + weighted-score trap would
// give the heaviest endpoint far more).
func TestPicker_LowLoadSharesFollowWeights(t *testing.T) {
	seeded(t, 1)
	es := newEntries(1, 2, 4)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	counts := make([]int, 3)
	const n = 70000
	for i := 0; i < n; i++ {
		idx, done := pickIndex(t, p, es)
		counts[idx]++
		done(Outcome{})
	}
	for i, w := range []float64{1, 2, 4} {
		got, want := float64(counts[i])/n, w/7
		if math.Abs(got-want) > 0.01 {
			t.Errorf("endpoint %d share %.3f, want %.3f ± 0.01 (counts %v)", i, got, want, counts)
		}
	}
}

// TestPicker_PrefersFewerInFlight: an endpoint with RPCs in flight loses to
// an idle one of the same weight.
func TestPicker_PrefersFewerInFlight(t *testing.T) {
	seeded(t, 2)
	es := newEntries(1, 1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	es[0].Endpoint.inFlight.Store(5)
	for i := 0; i < 100; i++ {
		idx, done := pickIndex(t, p, es)
		if idx != 1 {
			t.Fatalf("pick %d chose the busy endpoint", i)
		}
		done(Outcome{})
	}
}

// TestPicker_CandidatesAreDistinct: a stuck endpoint (many in flight) with
// almost all the weight must never be compared with itself and win.
func TestPicker_CandidatesAreDistinct(t *testing.T) {
	seeded(t, 3)
	es := newEntries(1000, 1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	es[0].Endpoint.inFlight.Store(1000)
	for i := 0; i < 1000; i++ {
		idx, done := pickIndex(t, p, es)
		if idx == 0 {
			t.Fatalf("pick %d chose the stuck endpoint", i)
		}
		done(Outcome{})
	}
}

// TestPicker_BiasZeroIsWeightedRandom: activeRequestBias 0 ignores load.
func TestPicker_BiasZeroIsWeightedRandom(t *testing.T) {
	seeded(t, 4)
	es := newEntries(1, 3)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 0}, es)
	es[1].Endpoint.inFlight.Store(100)
	counts := make([]int, 2)
	for i := 0; i < 40000; i++ {
		idx, done := pickIndex(t, p, es)
		counts[idx]++
		done(Outcome{})
	}
	if got := float64(counts[1]) / 40000; math.Abs(got-0.75) > 0.01 {
		t.Errorf("heavy endpoint share %.3f with bias 0, want 0.75 (counts %v)", got, counts)
	}
}

// TestPicker_InFlightReturnsToZero: Finish and Abort each end exactly the
// request Select counted, whatever its outcome.
func TestPicker_InFlightReturnsToZero(t *testing.T) {
	seeded(t, 8)
	es := newEntries(1, 1, 1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(time.Second)}, es)
	type sel struct {
		i int
		t Token
	}
	var sels []sel
	for range 30 {
		i, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		sels = append(sels, sel{i, tok})
	}
	total := int64(0)
	for _, e := range es {
		total += e.Endpoint.InFlight()
	}
	if total != 30 {
		t.Fatalf("in flight %d, want 30", total)
	}
	outcomes := []Outcome{{}, {Success, Timed}, {Failure, Untimed}, {NoVerdict, LowerBound}}
	for n, s := range sels {
		if n%5 == 4 {
			p.Abort(s.i, s.t)
			continue
		}
		p.Finish(s.i, s.t, outcomes[n%len(outcomes)])
	}
	picks := uint64(0)
	for i, e := range es {
		if n := e.Endpoint.InFlight(); n != 0 {
			t.Errorf("endpoint %d: %d in flight after every Finish/Abort", i, n)
		}
		picks += e.Endpoint.Picks()
	}
	if picks != 30 {
		t.Errorf("picks %d, want 30", picks)
	}
}

// TestPicker_SkipsOpenBreaker: an endpoint whose breaker is open is never
// picked; when every breaker is open the error says so.
func TestPicker_SkipsOpenBreaker(t *testing.T) {
	seeded(t, 5)
	now := int64(time.Hour)
	clock := func() int64 { return now }
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures = 1
	es := newEntries(1, 1, 1)
	for i := range es {
		es[i].Endpoint = NewEndpoint("ep", breaker.New(cfg, clock, nil))
		es[i].Gated = true
	}
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	// Trip endpoint 0 through a failed RPC's Done.
	for {
		idx, done := pickIndex(t, p, es)
		done(Outcome{Verdict: Failure})
		if idx == 0 {
			break
		}
		// Other endpoints tripped too: reset them by rebuilding.
		es[idx].Endpoint = NewEndpoint("ep", breaker.New(cfg, clock, nil))
		p = New(p.cfg, es)
	}
	if st := es[0].Endpoint.Breaker().State(); st != breaker.Open {
		t.Fatalf("breaker %v after a failure, want open", st)
	}
	for i := 0; i < 200; i++ {
		idx, done := pickIndex(t, p, es)
		if idx == 0 {
			t.Fatalf("pick %d chose the endpoint whose breaker is open", i)
		}
		done(Outcome{Verdict: Success, Timing: Timed})
	}
	// Open every breaker: Pick fails with ErrAllRejected.
	for i := 1; i < 3; i++ {
		tk, _ := es[i].Endpoint.Breaker().Allow()
		es[i].Endpoint.Breaker().Record(tk, false)
	}
	if _, _, err := p.Select(); !errors.Is(err, ErrAllRejected) {
		t.Fatalf("Select with every breaker open: %v, want ErrAllRejected", err)
	}
}

// fixedClock makes the picker's clock read *now for one test.
func fixedClock(t *testing.T, now *int64) {
	oldNow := fakeClock
	fakeClock = func() int64 { return *now }
	t.Cleanup(func() { fakeClock = oldNow })
}

// TestPicker_LatencyPenalty: with the latency term on, an endpoint 10x
// slower than its rival loses even when both are idle; within the 2x
// tolerance latency does not matter.
func TestPicker_LatencyPenalty(t *testing.T) {
	seeded(t, 6)
	now := int64(time.Hour)
	fixedClock(t, &now)
	decay := 10 * time.Second
	es := newEntries(1, 1)
	es[0].Endpoint.latency.observe(float64(20*time.Millisecond), now, 1/float64(decay), false)
	es[0].Endpoint.latency.observe(float64(20*time.Millisecond), now, 1/float64(decay), false)
	es[1].Endpoint.latency.observe(float64(2*time.Millisecond), now, 1/float64(decay), false)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(decay)}, es)
	for i := 0; i < 100; i++ {
		idx, done := pickIndex(t, p, es)
		if idx != 1 {
			t.Fatalf("pick %d chose the 10x slower endpoint", i)
		}
		done(Outcome{Verdict: Success}) // untimed: keeps the estimates
	}
	es[1].Endpoint.latency.observe(float64(20*time.Millisecond), now, 1/float64(decay), false) // now ~10.5ms vs ~15ms: within 2x
	counts := make([]int, 2)
	for i := 0; i < 2000; i++ {
		idx, done := pickIndex(t, p, es)
		counts[idx]++
		done(Outcome{Verdict: Success}) // untimed: keeps the estimates
	}
	if counts[0] < 800 {
		t.Errorf("within the tolerance both should share evenly, got %v", counts)
	}
}

// TestPicker_EjectedCandidateIsRedrawn: when a drawn candidate's breaker
// rejects the call, another is drawn, so the survivor does not win
// unopposed: a busy endpoint still loses to idle ones.
func TestPicker_EjectedCandidateIsRedrawn(t *testing.T) {
	seeded(t, 7)
	now := int64(time.Hour)
	clock := func() int64 { return now }
	cfg := breaker.DefaultConfig()
	cfg.ConsecutiveFailures = 1
	es := newEntries(1, 1, 1, 1)
	for i := range es {
		es[i].Endpoint = NewEndpoint("ep", breaker.New(cfg, clock, nil))
		es[i].Gated = true
	}
	tk, _ := es[0].Endpoint.Breaker().Allow()
	es[0].Endpoint.Breaker().Record(tk, false) // endpoint 0 ejected
	es[1].Endpoint.inFlight.Store(10)          // endpoint 1 busy
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
	for i := 0; i < 500; i++ {
		idx, done := pickIndex(t, p, es)
		if idx == 0 || idx == 1 {
			t.Fatalf("pick %d chose endpoint %d (ejected or busy)", i, idx)
		}
		done(Outcome{Verdict: Success, Timing: Timed})
	}
}

// TestPicker_SharedClockReadOncePerFinish: a breaker on the picker's clock
// (ShareClock) gets Finish's reading with a timed outcome and reads no
// clock of its own; one that does not share it reads its clock; both count
// the outcome (a failure trips a breaker with ConsecutiveFailures 1 either
// way).
func TestPicker_SharedClockReadOncePerFinish(t *testing.T) {
	for _, shared := range []bool{true, false} {
		var reads int
		clock := func() int64 { reads++; return Nanotime() }
		cfg := breaker.DefaultConfig()
		cfg.ConsecutiveFailures = 1
		br := breaker.New(cfg, clock, nil)
		ep := NewEndpoint("ep", br)
		if shared {
			ep.ShareClock()
		}
		p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(time.Second)}, []Entry{{Endpoint: ep, Weight: 1, Gated: true}})
		i, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		reads = 0
		p.Finish(i, tok, Outcome{Verdict: Success, Timing: Timed})
		if want := map[bool]int{true: 0, false: 1}[shared]; reads != want {
			t.Errorf("shared=%v: breaker read its clock %d times in Finish, want %d", shared, reads, want)
		}
		i, tok, _ = p.Select()
		p.Finish(i, tok, Outcome{Verdict: Failure, Timing: Timed})
		if br.State() != breaker.Open {
			t.Errorf("shared=%v: breaker %v after a failure, want open", shared, br.State())
		}
	}
}

// TestSampleTwo_FractionUniformAndIndependent: the comparison's random
// fraction, taken from the draw of b's index, is uniform on [0, 1) and
// independent of both indices (each decile holds a tenth of the draws, for
// every value of a and of b).
func TestSampleTwo_FractionUniformAndIndependent(t *testing.T) {
	for _, n := range []int{2, 3, 7, 1000} {
		seeded(t, uint64(n))
		w := make([]float64, n)
		for i := range w {
			w[i] = 1
		}
		p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, newEntries(w...))
		const draws = 200000
		idx := min(n, 3) // the first indices of a and of b
		var byA, byB [3][10]int
		var perA, perB [3]int
		for range draws {
			a, b, u := p.sampleTwo()
			if u < 0 || u >= 1 {
				t.Fatalf("n=%d: u=%v outside [0, 1)", n, u)
			}
			d := int(u * 10)
			if a < idx {
				byA[a][d]++
				perA[a]++
			}
			if b < idx {
				byB[b][d]++
				perB[b]++
			}
		}
		for i := range idx {
			for d := range 10 {
				for _, c := range []struct {
					name      string
					got, base int
				}{{"a", byA[i][d], perA[i]}, {"b", byB[i][d], perB[i]}} {
					want := float64(c.base) / 10
					if math.Abs(float64(c.got)-want) > 5*math.Sqrt(want) {
						t.Errorf("n=%d, %s=%d: decile %d of u has %d draws, want %.0f ± %.0f", n, c.name, i, d, c.got, want, 5*math.Sqrt(want))
					}
				}
			}
		}
	}
}
