package picker

import (
	"container/heap"
	"math"
	rand "math/rand/v2"
	"testing"
)

// completion is an RPC in flight in the closed-loop simulation.
type completion struct {
	at   float64
	done func(Outcome)
}

type completions []completion

func (c completions) Len() int           { return len(c) }
func (c completions) Less(i, j int) bool { return c[i].at < c[j].at }
func (c completions) Swap(i, j int)      { c[i], c[j] = c[j], c[i] }
func (c *completions) Push(x any)        { *c = append(*c, x.(completion)) }
func (c *completions) Pop() any {
	o := *c
	x := o[len(o)-1]
	*c = o[:len(o)-1]
	return x
}

// TestPicker_ClosedLoopShares drives the real picker in a discrete-event
// simulation: `callers` clients, each sending its next RPC as soon as the
// previous one completes, on equal endpoints with exponential service
// times (mean 1). Shares must follow the weights 1:2:4 at every
// concurrency: measured (seeded, so repeatable) 0.1 points off
// 14.3/28.6/57.1 % with 1 caller, 4.0 with 2 (the hardest case for any rule
// comparing small integer in-flight counts), 2.1 with 3 and at most 1.4
// from 4 to 32; the bounds below sit just above those figures. This is the measurement behind the
// selection rule in beats; run it with -v to see the shares:
//
//	go test -run TestPicker_ClosedLoopShares -v ./picker
func TestPicker_ClosedLoopShares(t *testing.T) {
	seeded(t, 11)
	svc := rand.New(rand.NewPCG(12, 13))
	weights := []float64{1, 2, 4}
	const picks = 60000
	for _, callers := range []int{1, 2, 3, 4, 8, 16, 32} {
		es := newEntries(weights...)
		p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, es)
		counts := make([]int, len(es))
		h := &completions{}
		now := 0.0
		send := func() {
			idx, done := pickIndex(t, p, es)
			counts[idx]++
			heap.Push(h, completion{at: now + svc.ExpFloat64(), done: done})
		}
		for i := 0; i < callers; i++ {
			send()
		}
		for n := callers; n < picks; n++ {
			c := heap.Pop(h).(completion)
			now = c.at
			c.done(Outcome{})
			send()
		}
		tol := 2.5
		if callers == 2 {
			tol = 4.5
		}
		got := make([]float64, len(es))
		worst := 0.0
		for i := range es {
			got[i] = 100 * float64(counts[i]) / picks
			worst = max(worst, math.Abs(got[i]-100*weights[i]/7))
		}
		t.Logf("%2d callers: shares %.1f, worst %.1f points off", callers, got, worst)
		if worst > tol {
			t.Errorf("%d callers: shares %.1f, want 14.3/28.6/57.1 ± %g points", callers, got, tol)
		}
	}
}
