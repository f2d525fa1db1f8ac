package picker

import (
	"math"
	"testing"
)

// shareOf selects n times with the in-flight counts pinned (each request
// is aborted right after its selection) and returns how often each entry
// won.
func shareOf(t *testing.T, p *Picker, es []Entry, n int) []float64 {
	t.Helper()
	wins := make([]float64, len(es))
	for range n {
		i, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		p.Abort(i, tok)
		wins[i]++
	}
	for i := range wins {
		wins[i] /= float64(n)
	}
	return wins
}

// TestPicker_BiasAboveOne: activeRequestBias raises the in-flight count to
// its power before dividing by the weight. X (weight 2, 3 in flight) is
// drawn first 2/3 of the time; Y (weight 1, 1 in flight) replaces it when
// (1+u)^bias/1 <= 3^bias/2. With bias 1 that is u <= 0.5, so Y wins
// 1/3 + 2/3 x 1/2 = 2/3 of picks; with bias 2 it always holds (4 <= 4.5),
// so Y wins every pick. Binomial sd over 20 000 picks: 0.33 points; the
// tolerance is 2 points.
func TestPicker_BiasAboveOne(t *testing.T) {
	for _, tc := range []struct {
		bias, wantY float64
	}{{1, 2.0 / 3}, {2, 1}} {
		seeded(t, 21)
		es := newEntries(2, 1)
		es[0].Endpoint.inFlight.Store(3)
		es[1].Endpoint.inFlight.Store(1)
		p := New(Config{ChoiceCount: 2, ActiveRequestBias: tc.bias}, es)
		if got := shareOf(t, p, es, 20000)[1]; math.Abs(got-tc.wantY) > 0.02 {
			t.Errorf("bias %g: Y's share %.3f, want %.3f", tc.bias, got, tc.wantY)
		}
	}
}

// TestPicker_ChoiceCountAboveTwo: with one idle endpoint among three busy
// alike, choiceCount 2 finds it only when it is one of the 2 distinct
// candidates (2/3 of picks for equal weights); choiceCount 3 compares all
// three and always finds it.
func TestPicker_ChoiceCountAboveTwo(t *testing.T) {
	for _, tc := range []struct {
		k    int
		want float64
	}{{2, 2.0 / 3}, {3, 1}} {
		seeded(t, 22)
		es := newEntries(1, 1, 1)
		es[0].Endpoint.inFlight.Store(5)
		es[1].Endpoint.inFlight.Store(5)
		p := New(Config{ChoiceCount: tc.k, ActiveRequestBias: 1}, es)
		if got := shareOf(t, p, es, 20000)[2]; math.Abs(got-tc.want) > 0.02 {
			t.Errorf("choiceCount %d: idle endpoint's share %.3f, want %.3f", tc.k, got, tc.want)
		}
	}
}
