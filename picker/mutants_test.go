package picker

import (
	"math"
	rand "math/rand/v2"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// The tests of this file were written against the mutants that survived
// `go run ./internal/cmd/mutate ./picker` (docs/mutation.md): each pins a
// behaviour no earlier test checked.

// fixedU makes the random fraction u of beats a constant for one test.
func fixedU(t *testing.T, u float64) {
	old := randFloat64
	randFloat64 = func() float64 { return u }
	t.Cleanup(func() { randFloat64 = old })
}

// setEstimate sets e's estimate to v nanoseconds as of now, as a series
// of samples would (one sample moves it at most to 2x: clipFactor).
func setEstimate(e *peakEWMA, v float64, now int64) {
	e.cost.Store(math.Float64bits(v))
	e.stamp.Store(now)
}

// fakeNanotime freezes the picker's clock at *now for one test.
func fakeNanotime(t *testing.T, now *int64) {
	old := fakeClock
	fakeClock = func() int64 { return *now }
	t.Cleanup(func() { fakeClock = old })
}

// TestAlias_TableMatchesWeights checks Vose's table exactly, without
// sampling: slot i keeps i with probability thr/2^32 and gives the rest to
// its alias, so entry j's probability is the sum of what the slots give it,
// over n. It must equal weight/total for every weight vector, including
// those where a large entry falls below 1 and becomes small itself
// ({1, 7, 7}: 1.4 -> 0.6).
func TestAlias_TableMatchesWeights(t *testing.T) {
	vectors := [][]float64{{1, 2, 4}, {1, 7, 7}, {3, 1}, {5, 1, 1, 1, 1}, {1, 1, 1, 1, 9, 9, 9}, {0.1, 10000, 3.5}}
	rng := rand.New(rand.NewPCG(21, 22))
	for range 50 {
		w := make([]float64, 2+rng.IntN(11))
		for i := range w {
			w[i] = float64(1 + rng.IntN(10000))
		}
		vectors = append(vectors, w)
	}
	for _, w := range vectors {
		es := newEntries(w...)
		total := 0.0
		for _, x := range w {
			total += x
		}
		table := buildAlias(es, total)
		got := make([]float64, len(w))
		for i, s := range table {
			keep := float64(s.thr) / (1 << 32)
			got[i] += keep / float64(len(w))
			got[s.other] += (1 - keep) / float64(len(w))
		}
		// thr has a resolution of 2^-32 per slot.
		for i := range w {
			if want := w[i] / total; math.Abs(got[i]-want) > 1e-8 {
				t.Errorf("weights %v: entry %d has probability %.10f, want %.10f (table %v)", w, i, got[i], want, table)
			}
		}
	}
}

// TestPicker_EqualWeightsShareEvenly: equal weights take the path without
// an alias table; idle endpoints must share picks evenly, and a single
// endpoint gets every pick.
func TestPicker_EqualWeightsShareEvenly(t *testing.T) {
	seeded(t, 31)
	for _, n := range []int{1, 2, 3, 5} {
		ws := make([]float64, n)
		for i := range ws {
			ws[i] = 2
		}
		es := newEntries(ws...)
		p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
		counts := make([]int, n)
		const picks = 30000
		for range picks {
			idx, done := pickIndex(t, p, es)
			counts[idx]++
			done(Outcome{})
		}
		// 30000 picks: the standard deviation of a share is at most
		// sqrt(0.25/30000) = 0.0029; 0.012 is four of them.
		for i, c := range counts {
			if got := float64(c) / picks; math.Abs(got-1/float64(n)) > 0.012 {
				t.Errorf("%d equal endpoints: endpoint %d share %.3f, want %.3f (counts %v)", n, i, got, 1/float64(n), counts)
			}
		}
	}
}

// TestPicker_ChoiceCountBelowTwo: a Config that skipped Validate with
// ChoiceCount 0 or 1 compares one candidate: weighted random, whatever the
// load, never a uniform pick or a comparison of two.
func TestPicker_ChoiceCountBelowTwo(t *testing.T) {
	for _, cc := range []int{0, 1} {
		seeded(t, 32)
		es := newEntries(1, 3)
		es[1].Endpoint.inFlight.Store(100)
		p := New(Config{ChoiceCount: cc, ActiveRequestBias: 1}, es)
		counts := make([]int, 2)
		const picks = 20000
		for range picks {
			idx, done := pickIndex(t, p, es)
			counts[idx]++
			done(Outcome{})
		}
		// Standard deviation sqrt(0.1875/20000) = 0.003.
		if got := float64(counts[1]) / picks; math.Abs(got-0.75) > 0.012 {
			t.Errorf("ChoiceCount %d: busy heavy endpoint share %.3f, want its weight share 0.75", cc, got)
		}
	}
}

// TestPicker_LatencyCostRule pins the comparison of two candidates with
// latency estimates (u fixed at 0.3, equal weights): beyond the 2x
// tolerance the slower one's load is (inFlight + 1) x ratio - 1 (Linkerd's
// cost); at exactly 2x, below the 1 ms floor, or when either estimate is
// unknown, load alone decides; activeRequestBias is the exponent of both
// loads.
func TestPicker_LatencyCostRule(t *testing.T) {
	fixedU(t, 0.3)
	const now = int64(time.Hour)
	decay := 10 * time.Second
	ep := func(inFlight int64, latency time.Duration) *Entry {
		e := &Entry{Endpoint: NewEndpoint("ep", nil), Weight: 1}
		e.Endpoint.inFlight.Store(inFlight)
		if latency > 0 {
			setEstimate(&e.Endpoint.latency, float64(latency), now)
		}
		return e
	}
	ms := time.Millisecond
	tests := []struct {
		name         string
		bInF         int64
		bLat         time.Duration
		aInF         int64
		aLat         time.Duration
		bias, wa, wb float64
		want         bool
	}{
		// a 4x slower: its load is (0+1)x4-1 = 3.
		{"a 4x slower, b at 2 in flight", 2, 5 * ms, 0, 20 * ms, 1, 1, 1, true},
		{"a 4x slower, b at 3 in flight", 3, 5 * ms, 0, 20 * ms, 1, 1, 1, false},
		// b 4x slower: its load is (0+0.3+1)x4-1 = 4.2.
		{"b 4x slower, a at 5 in flight", 0, 20 * ms, 5, 5 * ms, 1, 1, 1, true},
		{"b 4x slower, a at 4 in flight", 0, 20 * ms, 4, 5 * ms, 1, 1, 1, false},
		// Exactly 2x is within the tolerance.
		{"a exactly 2x slower", 0, 2 * ms, 0, 4 * ms, 1, 1, 1, false},
		{"b exactly 2x slower", 0, 4 * ms, 1, 2 * ms, 1, 1, 1, true},
		// 0.05ms vs 0.2ms both count as 1ms.
		{"a 4x slower below the floor", 0, ms / 20, 0, ms / 5, 1, 1, 1, false},
		// An unknown estimate turns the latency term off.
		{"b unknown, a slow", 0, 0, 0, 20 * ms, 1, 1, 1, false},
		{"a unknown, b slow", 0, 20 * ms, 1, 0, 1, 1, 1, true},
		// Weights, then the exponent: 2.3 x 1 <= 1 x 3, but 2.3^2 > 3.
		{"bias 1, b heavier", 2, 0, 1, 0, 1, 1, 3, true},
		{"bias 2, b heavier", 2, 0, 1, 0, 2, 1, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := ep(tc.aInF, tc.aLat), ep(tc.bInF, tc.bLat)
			a.Weight, b.Weight = tc.wa, tc.wb
			p := New(Config{ChoiceCount: 2, ActiveRequestBias: tc.bias, LatencyAware: true, LatencyDecay: config.Duration(decay)}, []Entry{*a, *b})
			if got := p.beats(b, a, now); got != tc.want {
				t.Errorf("beats = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPicker_FinishFeedsLatency: a latency-aware picker times each request
// from Select to Finish; a Timed outcome is a sample, an Untimed one is
// none, a LowerBound one may only raise the estimate. Without the latency
// term nothing is recorded.
func TestPicker_FinishFeedsLatency(t *testing.T) {
	now := int64(time.Hour)
	fakeNanotime(t, &now)
	decay := 10 * time.Second
	es := newEntries(1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(decay)}, es)
	ep := es[0].Endpoint
	request := func(d time.Duration, o Outcome) time.Duration {
		t.Helper()
		i, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		now += int64(d)
		p.Finish(i, tok, o)
		return ep.Latency(decay)
	}
	if got := request(30*time.Millisecond, Outcome{Success, Timed}); got != 1500*time.Microsecond {
		t.Fatalf("first 30ms sample: estimate %v, want 1.5ms (clipped to 3x the 1ms floor, half way from none)", got)
	}
	setEstimate(&ep.latency, float64(15*time.Millisecond), now)
	decayed := time.Duration(float64(15*time.Millisecond) * decayWeight(int64(200*time.Millisecond), 1/float64(decay)))
	if got := request(200*time.Millisecond, Outcome{Success, Untimed}); got != decayed {
		t.Fatalf("after an untimed 200ms request: estimate %v, want 15ms only decayed (%v)", got, decayed)
	}
	// A timed 10ms sample 210ms after the last one: blended down.
	w := decayWeight(int64(210*time.Millisecond), 1/float64(decay))
	wantF := float64(15*time.Millisecond)*w + float64(10*time.Millisecond)*(1-w)
	want := time.Duration(wantF)
	if got := request(10*time.Millisecond, Outcome{Failure, Timed}); got != want {
		t.Fatalf("timed 10ms sample below the estimate: %v, want %v", got, want)
	}
	if got := request(time.Millisecond, Outcome{NoVerdict, LowerBound}); got != time.Duration(wantF*decayWeight(int64(time.Millisecond), 1/float64(decay))) {
		t.Fatalf("1ms lower bound below the estimate %v changed it to %v", want, got)
	}
	if got := request(100*time.Millisecond, Outcome{NoVerdict, LowerBound}); got <= want {
		t.Fatalf("100ms lower bound above the estimate %v left it at %v", want, got)
	}

	off := newEntries(1)
	p = New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyDecay: config.Duration(decay)}, off)
	i, tok, _ := p.Select()
	now += int64(50 * time.Millisecond)
	p.Finish(i, tok, Outcome{Success, Timed})
	if got := off[0].Endpoint.Latency(decay); got != 0 {
		t.Fatalf("latency term off: estimate %v after a timed request, want none", got)
	}
}

// TestEWMA_DownwardBlend: a sample below the estimate is blended in with the
// weight of the time since the last update: prev x w + rtt x (1 - w).
func TestEWMA_DownwardBlend(t *testing.T) {
	rate := 1 / float64(time.Second)
	t0 := int64(time.Hour)
	var e peakEWMA
	setEstimate(&e, float64(50*time.Millisecond), t0)
	e.observe(float64(10*time.Millisecond), t0+int64(time.Second), rate, false)
	w := math.Exp(-1)
	want := float64(50*time.Millisecond)*w + float64(10*time.Millisecond)*(1-w)
	if got := e.value(t0+int64(time.Second), rate); math.Abs(got-want) > 1e-9*want {
		t.Fatalf("estimate after a 10ms sample one decay period after 50ms: %v, want %v", time.Duration(got), time.Duration(want))
	}
}

// TestEWMA_LowerBoundAtTheEstimate: a lower bound equal to the current
// (decayed) estimate says nothing new and must leave the estimate and its
// decay alone.
func TestEWMA_LowerBoundAtTheEstimate(t *testing.T) {
	rate := 1 / float64(time.Second)
	t0 := int64(time.Hour)
	var e peakEWMA
	e.observe(float64(100*time.Millisecond), t0, rate, false)
	cost := e.value(t0, rate)
	at := t0 + int64(time.Second)
	e.observe(e.value(at, rate), at, rate, true)
	later := t0 + int64(2*time.Second)
	if got, want := e.value(later, rate), cost*decayWeight(later-t0, rate); math.Abs(got-want) > 1e-9*want {
		t.Fatalf("estimate after a lower bound equal to it: %v, want only the decay to %v", time.Duration(got), time.Duration(want))
	}
}

// TestEWMA_NoInformationAndStaleReads: an endpoint without samples reports
// zero ("unknown"), and a read at a time before the last update (a
// concurrent reader with an older clock reading) sees the estimate
// undecayed, never inflated.
func TestEWMA_NoInformationAndStaleReads(t *testing.T) {
	if got := NewEndpoint("ep", nil).Latency(time.Second); got != 0 {
		t.Fatalf("latency of a new endpoint %v, want 0 (unknown)", got)
	}
	rate := 1 / float64(time.Second)
	t0 := int64(time.Hour)
	var e peakEWMA
	setEstimate(&e, float64(40*time.Millisecond), t0)
	e.observe(float64(100*time.Millisecond), t0, rate, false) // halfway: 70ms
	if got, want := e.value(t0-int64(time.Second), rate), float64(70*time.Millisecond); got != want {
		t.Fatalf("estimate read 1s before its last update: %v, want %v", time.Duration(got), time.Duration(want))
	}
}

// TestDecayWeight_MatchesExp: the decay is exp(-elapsed/tau), with the
// second-order Taylor shortcut below 0.01 exact to 2e-7; no elapsed time
// (or a negative one) is no decay.
func TestDecayWeight_MatchesExp(t *testing.T) {
	tau := float64(time.Second)
	rate := 1 / tau
	for _, x := range []float64{1e-9, 1e-6, 1e-3, 0.005, 0.0099, 0.01, 0.02, 0.5, 1, 3, 10} {
		got, want := decayWeight(int64(x*tau), rate), math.Exp(-float64(int64(x*tau))/tau)
		if math.Abs(got-want) > 2e-7 {
			t.Errorf("decayWeight(%g tau) = %.9f, want exp = %.9f", x, got, want)
		}
	}
	for _, el := range []int64{0, -1, -int64(time.Second)} {
		if got := decayWeight(el, rate); got != 1 {
			t.Errorf("decayWeight(%d) = %v, want 1", el, got)
		}
	}
}
