package picker

import (
	rand "math/rand/v2"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// sim drives a latency-aware picker on a fake clock, perMs arrivals per
// millisecond (1 unless set): each request ends after its endpoint's
// service time (timed), or at its deadline (a lower bound) if the endpoint
// is hung.
type sim struct {
	t       *testing.T
	p       *Picker
	now     *int64
	service []time.Duration // per endpoint
	hung    []bool
	pending []simReq
	picks   []int // per endpoint, since the last reset
	perMs   int
	// jitter, if set, makes a service time 0.6 + 0.4 x Exp(1) times the
	// endpoint's (3ms + Exp(2ms) for 5ms, as in the scenario benchmark).
	jitter *rand.Rand
}

type simReq struct {
	i   int
	tok Token
	end int64
	o   Outcome
}

const simDeadline = time.Second

func newSim(t *testing.T, now *int64, service ...time.Duration) *sim {
	fakeNanotime(t, now)
	es := newEntries(make([]float64, len(service))...)
	for i := range es {
		es[i].Weight = 1
	}
	cfg := DefaultConfig()
	cfg.LatencyDecay = config.Duration(3 * time.Second)
	return &sim{t: t, p: New(cfg, es), now: now, service: service, hung: make([]bool, len(service)), picks: make([]int, len(service))}
}

// run advances the clock by d, one arrival per millisecond.
func (s *sim) run(d time.Duration) {
	for end := *s.now + int64(d); *s.now < end; {
		*s.now += int64(time.Millisecond)
		kept := s.pending[:0]
		for _, r := range s.pending {
			if r.end <= *s.now {
				s.p.Finish(r.i, r.tok, r.o)
			} else {
				kept = append(kept, r)
			}
		}
		s.pending = kept
		for range max(s.perMs, 1) {
			s.arrive()
		}
	}
}

func (s *sim) arrive() {
	i, tok, err := s.p.SelectBounded(true)
	if err != nil {
		s.t.Fatal(err)
	}
	s.picks[i]++
	d := float64(s.service[i])
	if s.jitter != nil {
		d *= 0.6 + 0.4*s.jitter.ExpFloat64()
	}
	r := simReq{i: i, tok: tok, end: *s.now + int64(d), o: Outcome{Verdict: Success, Timing: Timed}}
	if s.hung[i] {
		r.end, r.o = *s.now+int64(simDeadline), Outcome{Timing: LowerBound}
	}
	s.pending = append(s.pending, r)
}

func (s *sim) share(i int) float64 {
	total := 0
	for _, n := range s.picks {
		total += n
	}
	return float64(s.picks[i]) / float64(total)
}

func (s *sim) reset() { clear(s.picks) }

// TestPicker_HungEndpointLosesToSlowPeers (issue 21 f): three endpoints
// 10x slow (50ms) and one fast (5ms) that hangs: its requests, with a 1s
// deadline, stop completing. Its estimate moves only when requests end, so
// until the first deadline it kept its 5ms estimate and beat the slow
// peers while requests piled up on it. The age of its bounded requests in
// flight must make it lose within 400ms of the onset.
func TestPicker_HungEndpointLosesToSlowPeers(t *testing.T) {
	seeded(t, 21)
	now := int64(time.Hour)
	ms := time.Millisecond
	s := newSim(t, &now, 50*ms, 50*ms, 50*ms, 5*ms)
	s.run(3 * time.Second)
	if sh := s.share(3); sh < 0.4 { // it wins every pair it is in
		t.Fatalf("before the hang the fast endpoint got %.1f%% of picks, want at least 40%%", 100*sh)
	}
	s.hung[3] = true
	s.run(400 * ms)
	s.reset()
	s.run(600 * ms) // up to the first deadline
	if sh := s.share(3); sh > 0.01 {
		t.Fatalf("hung endpoint got %.1f%% of picks (%d) 0.4-1s after its hang onset, want under 1%%: picks %v", 100*sh, s.picks[3], s.picks)
	}
}

// TestPicker_StreamEndDoesNotStarve (issue 21 e): a 60s stream on one of
// four equal endpoints, amid unary requests. grpc-go reports a stream's
// lifetime as its latency when it ends; the estimate became 30s and the
// endpoint got no picks for tens of seconds. It must get a fair share
// (a quarter, at least 15%) from 1s after the stream ends, and during the
// stream, whether the stream is bounded (a deadline) or not.
func TestPicker_StreamEndDoesNotStarve(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bounded bool
		end     Outcome
	}{
		{"unbounded, ends ok", false, Outcome{Verdict: Success, Timing: Timed}},
		{"unbounded, cancelled", false, Outcome{Timing: LowerBound}},
		{"bounded, ends ok", true, Outcome{Verdict: Success, Timing: Timed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seeded(t, 5)
			now := int64(time.Hour)
			ms := time.Millisecond
			s := newSim(t, &now, 5*ms, 5*ms, 5*ms, 5*ms)
			s.run(time.Second)
			var stream Token
			for {
				i, tok, err := s.p.SelectBounded(tc.bounded)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					stream = tok
					break
				}
				s.p.Abort(i, tok)
			}
			s.reset()
			s.run(60 * time.Second)
			if sh := s.share(0); sh < 0.15 {
				t.Fatalf("during the stream: endpoint 0 got %.1f%% of picks, want at least 15%%", 100*sh)
			}
			s.p.Finish(0, stream, tc.end)
			s.run(time.Second)
			s.reset()
			s.run(time.Second)
			if sh := s.share(0); sh < 0.15 {
				t.Fatalf("1-2s after the stream ended: endpoint 0 got %.1f%% of picks (estimate %v), want at least 15%%", 100*sh, s.p.Entry(0).Endpoint.Latency(3*time.Second))
			}
		})
	}
}

// TestPicker_StalledEndpointLosesLatencyAdvantage (issue 21 f, the
// slow-hang scenario's criterion): three endpoints 10x slow, three fast,
// one fast one hangs. Until the age bound shows (a slot, 134-268ms), the
// hung endpoint keeps its 5ms estimate, and the latency cost multiplied
// its slow rivals' load by ten: it kept winning until ten times their
// requests were stuck on it (32 picks in its first 150ms against 10 with
// the latency term off, seed 1). A rival that has stalled (requests in
// flight, none ended while the others' did for stallFactor times its
// estimate) gets no latency advantage: its first second after the onset
// costs at most a quarter more picks than with the latency term off,
// summed over seeds (293 against 115 before, 127 after).
func TestPicker_StalledEndpointLosesLatencyAdvantage(t *testing.T) {
	on := hungPicksFirstSecond(t, 1, func(s *sim, _ *int64) { s.p.cfg.LatencyAware = true })
	off := hungPicksFirstSecond(t, 1, func(s *sim, _ *int64) { s.p.cfg.LatencyAware = false })
	if float64(on) > 1.25*float64(off) {
		t.Errorf("hung endpoint got %d picks in the first second after its hang onset with the latency term, %d without (10 seeds); want at most 1.25x", on, off)
	}
	t.Logf("picks to the hung endpoint in its first second: %d with the latency term, %d without", on, off)
}

// hungPicksFirstSecond sums over 10 seeds the picks a fast endpoint gets
// in the first second after it hangs, beside two fast and three 10x slow
// peers, at perMs arrivals per millisecond; setup adjusts each sim.
func hungPicksFirstSecond(t *testing.T, perMs int, setup func(s *sim, now *int64)) int {
	ms := time.Millisecond
	total := 0
	for seed := uint64(1); seed <= 10; seed++ {
		seeded(t, seed)
		now := int64(time.Hour)
		s := newSim(t, &now, 50*ms, 50*ms, 50*ms, 5*ms, 5*ms, 5*ms)
		setup(s, &now)
		s.perMs = perMs
		s.jitter = rand.New(rand.NewPCG(seed, 9))
		s.run(2 * time.Second)
		s.reset()
		s.hung[3] = true
		s.run(time.Second)
		total += s.picks[3]
	}
	return total
}
