package picker

import (
	"errors"
	"math"
	rand "math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
)

// childPicker is a READY child picker that counts Done calls.
type childPicker struct {
	id    int
	dones int
}

func (c *childPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{Metadata: nil, Done: func(balancer.DoneInfo) { c.dones++ }}, nil
}

// seeded makes the picker's randomness deterministic for one test.
func seeded(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	oldU, oldF := randUint64, randFloat64
	randUint64, randFloat64 = r.Uint64, r.Float64
	t.Cleanup(func() { randUint64, randFloat64 = oldU, oldF })
}

func newEntries(weights ...float64) ([]Entry, []*childPicker) {
	var es []Entry
	var cs []*childPicker
	for i, w := range weights {
		c := &childPicker{id: i}
		cs = append(cs, c)
		es = append(es, Entry{Picker: c, Endpoint: NewEndpoint("ep", nil), Weight: w})
	}
	return es, cs
}

// pickIndex picks once and returns the chosen entry's index; the RPC stays
// in flight until the returned done is called.
func pickIndex(t *testing.T, p *Picker, es []Entry) (int, func(balancer.DoneInfo)) {
	t.Helper()
	before := make([]int64, len(es))
	for i := range es {
		before[i] = es[i].Endpoint.InFlight()
	}
	res, err := p.Pick(balancer.PickInfo{})
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	for i := range es {
		if es[i].Endpoint.InFlight() == before[i]+1 {
			return i, res.Done
		}
	}
	t.Fatal("no in-flight counter moved")
	return -1, nil
}

// TestPicker_LowLoadSharesFollowWeights: with nothing in flight, picks
// follow weights exactly (the weighted-sampling + weighted-score trap would
// give the heaviest endpoint far more).
func TestPicker_LowLoadSharesFollowWeights(t *testing.T) {
	seeded(t, 1)
	es, _ := newEntries(1, 2, 4)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, 0, es)
	counts := make([]int, 3)
	const n = 70000
	for i := 0; i < n; i++ {
		idx, done := pickIndex(t, p, es)
		counts[idx]++
		done(balancer.DoneInfo{})
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
	es, _ := newEntries(1, 1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, 0, es)
	es[0].Endpoint.inFlight.Store(5)
	for i := 0; i < 100; i++ {
		idx, done := pickIndex(t, p, es)
		if idx != 1 {
			t.Fatalf("pick %d chose the busy endpoint", i)
		}
		done(balancer.DoneInfo{})
	}
}

// TestPicker_CandidatesAreDistinct: a stuck endpoint (many in flight) with
// almost all the weight must never be compared with itself and win.
func TestPicker_CandidatesAreDistinct(t *testing.T) {
	seeded(t, 3)
	es, _ := newEntries(1000, 1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, 0, es)
	es[0].Endpoint.inFlight.Store(1000)
	for i := 0; i < 1000; i++ {
		idx, done := pickIndex(t, p, es)
		if idx == 0 {
			t.Fatalf("pick %d chose the stuck endpoint", i)
		}
		done(balancer.DoneInfo{})
	}
}

// TestPicker_BiasZeroIsWeightedRandom: activeRequestBias 0 ignores load.
func TestPicker_BiasZeroIsWeightedRandom(t *testing.T) {
	seeded(t, 4)
	es, _ := newEntries(1, 3)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 0}, 0, es)
	es[1].Endpoint.inFlight.Store(100)
	counts := make([]int, 2)
	for i := 0; i < 40000; i++ {
		idx, done := pickIndex(t, p, es)
		counts[idx]++
		done(balancer.DoneInfo{})
	}
	if got := float64(counts[1]) / 40000; math.Abs(got-0.75) > 0.01 {
		t.Errorf("heavy endpoint share %.3f with bias 0, want 0.75 (counts %v)", got, counts)
	}
}

// TestPicker_InFlightAndChildDone: Done decrements the counter and calls
// the child's Done exactly once.
func TestPicker_InFlightAndChildDone(t *testing.T) {
	es, cs := newEntries(1, 1, 1)
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, 0, es)
	var dones []func(balancer.DoneInfo)
	for i := 0; i < 30; i++ {
		res, err := p.Pick(balancer.PickInfo{})
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, res.Done)
	}
	total := int64(0)
	for _, e := range es {
		total += e.Endpoint.InFlight()
	}
	if total != 30 {
		t.Fatalf("in flight %d, want 30", total)
	}
	for i, d := range dones {
		d(balancer.DoneInfo{Err: errors.New("rpc error"), BytesSent: i%2 == 0})
	}
	childDones := 0
	for i, e := range es {
		if n := e.Endpoint.InFlight(); n != 0 {
			t.Errorf("endpoint %d: %d in flight after every Done", i, n)
		}
		childDones += cs[i].dones
	}
	if childDones != 30 {
		t.Errorf("child Done called %d times, want 30", childDones)
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
	es, _ := newEntries(1, 1, 1)
	for i := range es {
		es[i].Endpoint = NewEndpoint("ep", breaker.New(cfg, clock, nil))
		es[i].Gated = true
	}
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, 1<<uint32(codes.Unavailable), es)
	// Trip endpoint 0 through a failed RPC's Done.
	for {
		idx, done := pickIndex(t, p, es)
		done(balancer.DoneInfo{Err: status.Error(codes.Unavailable, "x"), BytesReceived: true})
		if idx == 0 {
			break
		}
		// Other endpoints tripped too: reset them by rebuilding.
		es[idx].Endpoint = NewEndpoint("ep", breaker.New(cfg, clock, nil))
		p = New(p.cfg, p.failure, es)
	}
	if st := es[0].Endpoint.Breaker().State(); st != breaker.Open {
		t.Fatalf("breaker %v after a failure, want open", st)
	}
	for i := 0; i < 200; i++ {
		idx, done := pickIndex(t, p, es)
		if idx == 0 {
			t.Fatalf("pick %d chose the endpoint whose breaker is open", i)
		}
		done(balancer.DoneInfo{BytesReceived: true})
	}
	// Open every breaker: Pick fails with ErrAllRejected.
	for i := 1; i < 3; i++ {
		tk, _ := es[i].Endpoint.Breaker().Allow()
		es[i].Endpoint.Breaker().Record(tk, false)
	}
	if _, err := p.Pick(balancer.PickInfo{}); !errors.Is(err, ErrAllRejected) {
		t.Fatalf("Pick with every breaker open: %v, want ErrAllRejected", err)
	}
}

// TestPicker_Outcome classifies finished RPCs for the breaker.
func TestPicker_Outcome(t *testing.T) {
	p := New(Config{ChoiceCount: 2}, 1<<uint32(codes.Unavailable)|1<<uint32(codes.Internal), []Entry{{Weight: 1}})
	for _, tc := range []struct {
		di   balancer.DoneInfo
		want outcome
	}{
		{balancer.DoneInfo{BytesSent: true, BytesReceived: true}, outcomeSuccess},
		{balancer.DoneInfo{}, outcomeNeutral}, // transport not ready, re-picked
		{balancer.DoneInfo{Err: status.Error(codes.Unavailable, "")}, outcomeFailure},
		{balancer.DoneInfo{Err: status.Error(codes.Internal, "")}, outcomeFailure},
		{balancer.DoneInfo{Err: status.Error(codes.Canceled, "")}, outcomeNeutral},
		{balancer.DoneInfo{Err: status.Error(codes.DeadlineExceeded, "")}, outcomeNeutral},
		{balancer.DoneInfo{Err: status.Error(codes.NotFound, "")}, outcomeSuccess},
		{balancer.DoneInfo{Err: errors.New("plain")}, outcomeSuccess}, // UNKNOWN not configured
	} {
		if got, _ := p.outcome(tc.di); got != tc.want {
			t.Errorf("outcome(%+v) = %v, want %v", tc.di, got, tc.want)
		}
	}
}

// TestPicker_LatencyPenalty: with the latency term on, an endpoint 10x
// slower than its rival loses even when both are idle; within the 2x
// tolerance latency does not matter.
func TestPicker_LatencyPenalty(t *testing.T) {
	seeded(t, 6)
	now := int64(time.Hour)
	oldNow := nanotime
	nanotime = func() int64 { return now }
	t.Cleanup(func() { nanotime = oldNow })
	decay := 10 * time.Second
	es, _ := newEntries(1, 1)
	es[0].Endpoint.latency.observe(float64(20*time.Millisecond), now, float64(decay))
	es[0].Endpoint.latency.observe(float64(20*time.Millisecond), now, float64(decay))
	es[1].Endpoint.latency.observe(float64(2*time.Millisecond), now, float64(decay))
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: config.Duration(decay)}, 0, es)
	for i := 0; i < 100; i++ {
		idx, done := pickIndex(t, p, es)
		if idx != 1 {
			t.Fatalf("pick %d chose the 10x slower endpoint", i)
		}
		done(balancer.DoneInfo{Err: errors.New("keep the estimate")})
	}
	es[1].Endpoint.latency.observe(float64(20*time.Millisecond), now, float64(decay)) // now ~10.5ms vs ~15ms: within 2x
	counts := make([]int, 2)
	for i := 0; i < 2000; i++ {
		idx, done := pickIndex(t, p, es)
		counts[idx]++
		done(balancer.DoneInfo{Err: errors.New("keep the estimate")})
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
	es, _ := newEntries(1, 1, 1, 1)
	for i := range es {
		es[i].Endpoint = NewEndpoint("ep", breaker.New(cfg, clock, nil))
		es[i].Gated = true
	}
	tk, _ := es[0].Endpoint.Breaker().Allow()
	es[0].Endpoint.Breaker().Record(tk, false) // endpoint 0 ejected
	es[1].Endpoint.inFlight.Store(10)          // endpoint 1 busy
	p := New(Config{ChoiceCount: 2, ActiveRequestBias: 1}, 0, es)
	for i := 0; i < 500; i++ {
		idx, done := pickIndex(t, p, es)
		if idx == 0 || idx == 1 {
			t.Fatalf("pick %d chose endpoint %d (ejected or busy)", i, idx)
		}
		done(balancer.DoneInfo{BytesReceived: true})
	}
}
