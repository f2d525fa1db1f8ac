package endpointset

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// TestSlowStart_When: the ramp of a new endpoint starts at its first
// successful probe, not when it connects (warm-up comes first); an endpoint
// re-added a whole window after it left ramps; one that comes back from a
// transient failure on the same connection (fulcrumhttp's Retry-After
// hold: no NewConnection) does not ramp again.
func TestSlowStart_When(t *testing.T) {
	s, clk, _ := newSet(t, 2, DefaultConfig())
	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "z", Weight: 4}})
	z := s.Get("z")
	s.NewConnection(z)
	s.SetConn(z, ConnReady)
	clk.advance(3 * time.Second)
	s.SetHealth(z, true, "SERVING")
	s.Decide()
	if r := s.Results()["z"]; r.Weight != 4*0.1 {
		t.Fatalf("first probe 3s after connecting: weight %v, want the ramp's start (10 %% of 4)", r.Weight)
	}
	clk.advance(10 * time.Second)
	s.Decide()
	s.SetConn(z, ConnFailure)
	s.Decide()
	s.SetConn(z, ConnReady)
	s.Decide()
	if r := s.Results()["z"]; r.Ramping || r.Weight != 4 {
		t.Fatalf("back from transient failure on the same connection: %+v, want full weight", r)
	}

	window := time.Duration(DefaultConfig().SlowStart.Window)
	s, clk, _ = newSet(t, 2, DefaultConfig())
	s.Decide()
	s.Update([]Spec{{Key: "a", Weight: 1}})
	clk.advance(window)
	added, _ := s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	connect(s, added[0], true)
	s.Decide()
	if !s.Results()["b"].Ramping {
		t.Fatal("endpoint re-added a whole window after it left does not ramp")
	}
}

// TestUpdate_Bookkeeping: Update ignores empty and repeated keys (the first
// spec of a key wins), returns what it added and removed, no longer lists
// what it removed, and keeps its own copy of the addresses.
func TestUpdate_Bookkeeping(t *testing.T) {
	s, _, _ := newSet(t, 0, DefaultConfig())
	addrs := []string{"10.0.0.1:80"}
	added, _ := s.Update([]Spec{{Key: "a", Addrs: addrs, Weight: 1}, {Key: "a", Weight: 5}, {Key: "", Weight: 1}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}})
	if len(added) != 3 || s.Len() != 3 {
		t.Fatalf("added %d, Len %d, want a, b, c", len(added), s.Len())
	}
	addrs[0] = "overwritten"
	v := s.View(0)
	if e := v.Endpoints[0]; e.Key != "a" || e.Weight != 1 || !slices.Equal(e.Addrs, []string{"10.0.0.1:80"}) {
		t.Fatalf("a: %+v, want weight 1 from its first spec and the addresses as given", e)
	}
	b := s.Get("b")
	added, removed := s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "c", Weight: 1}})
	if len(added) != 0 || len(removed) != 1 || removed[0] != b {
		t.Fatalf("removing b: added %d, removed %v, want b only", len(added), removed)
	}
	var keys []string
	for _, r := range s.Records() {
		keys = append(keys, r.Key)
	}
	if !slices.Equal(keys, []string{"a", "c"}) || s.Get("b") != nil {
		t.Fatalf("records %v after removing b, want [a c]", keys)
	}
}

// TestSet_WithoutBreakersOrClock: a Set without breaker configuration gives
// its endpoints no breaker and ungated entries; without Options.Now it runs
// on the real clock.
func TestSet_WithoutBreakersOrClock(t *testing.T) {
	s := New(DefaultConfig(), Options{})
	added, _ := s.Update([]Spec{{Key: "a", Weight: 1}})
	s.SetConn(added[0], ConnReady)
	d := s.Decide()
	if len(d.Entries) != 1 || d.Entries[0].Gated || added[0].Hot.Breaker() != nil {
		t.Fatalf("%d entries, gated %v, breaker %v; want one ungated entry without breaker", len(d.Entries), len(d.Entries) > 0 && d.Entries[0].Gated, added[0].Hot.Breaker())
	}
}

// TestSetConfig_Breakers: a breaker configuration that changes (added,
// removed or different) gives every endpoint fresh picker state; an equal
// one, even in a new pointer, keeps it (and the breaker's state).
func TestSetConfig_Breakers(t *testing.T) {
	other := *testBreaker()
	other.ConsecutiveFailures = 9
	for _, tc := range []struct {
		name        string
		from, to    *breaker.Config
		replaced    bool
		wantBreaker bool
	}{
		{"none to none", nil, nil, false, false},
		{"none to some", nil, testBreaker(), true, true},
		{"equal", testBreaker(), testBreaker(), false, true},
		{"different", testBreaker(), &other, true, true},
		{"some to none", testBreaker(), nil, true, false},
	} {
		clk := &clock{t: time.Unix(1000, 0)}
		opts := Options{Breaker: tc.from, Now: clk.now}
		s := New(DefaultConfig(), opts)
		added, _ := s.Update([]Spec{{Key: "a", Weight: 1}})
		hot := added[0].Hot
		opts.Breaker = tc.to
		s.SetConfig(DefaultConfig(), opts)
		if got := s.Get("a").Hot; (got != hot) != tc.replaced || (got.Breaker() != nil) != tc.wantBreaker {
			t.Errorf("%s: replaced %v, breaker %v; want replaced %v, breaker %v", tc.name, got != hot, got.Breaker() != nil, tc.replaced, tc.wantBreaker)
		}
	}
}

// TestSetConfig_Probing: turning probing on does not hold back connections
// that were serving unprobed; a configuration change that keeps probing on
// does not release an endpoint waiting for its first probe.
func TestSetConfig_Probing(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	opts := Options{Breaker: testBreaker(), Now: clk.now}
	s := New(DefaultConfig(), opts)
	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	s.NewConnection(s.Get("a"))
	s.SetConn(s.Get("a"), ConnReady)
	opts.Probing, opts.Warmup = true, true
	s.SetConfig(DefaultConfig(), opts)
	if d := s.Decide(); d.Results[0].State != Usable || d.Results[1].State != Connecting {
		t.Fatalf("probing turned on: a %v, b %v; want a still usable, b connecting", d.Results[0].State, d.Results[1].State)
	}
	s.NewConnection(s.Get("b"))
	s.SetConn(s.Get("b"), ConnReady)
	s.SetConfig(DefaultConfig(), opts)
	if d := s.Decide(); d.Results[1].State != Warming {
		t.Fatalf("config change with probing kept on: b %v, want warming until its first probe", d.Results[1].State)
	}
}

// TestSet_BreakerCallbacks: every breaker transition reaches OnChange and
// OnBreakerChange (with the key), and a half-open trial that ends without a
// transition reaches OnChange (the next trial may go).
func TestSet_BreakerCallbacks(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	changes := 0
	var edges []string
	s := New(DefaultConfig(), Options{Breaker: testBreaker(), Now: clk.now,
		OnChange: func() { changes++ },
		OnBreakerChange: func(key string, from, to breaker.State) {
			edges = append(edges, fmt.Sprintf("%s %v->%v", key, from, to))
		},
	})
	added, _ := s.Update([]Spec{{Key: "a", Weight: 1}})
	trip(t, added[0])
	if changes != 1 || !slices.Equal(edges, []string{"a closed->open"}) {
		t.Fatalf("after the trip: %d OnChange, edges %v; want 1 and [a closed->open]", changes, edges)
	}
	clk.advance(5 * time.Second)
	br := added[0].Hot.Breaker()
	tk, _ := br.Allow()
	br.Record(tk, true) // trial 1 of 3: no transition
	if changes != 3 || !slices.Equal(edges, []string{"a closed->open", "a open->half-open"}) {
		t.Fatalf("after a successful trial: %d OnChange, edges %v; want 3 (half-open, trial end) and the half-open edge", changes, edges)
	}
}

// captureLogs records what the Set logs for one test.
type captureLogs struct {
	mu    sync.Mutex
	lines []string
}

func (c *captureLogs) add(sev string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, sev+": "+fmt.Sprint(args...))
}
func (c *captureLogs) Infof(f string, a ...any)    { c.add("INFO", fmt.Sprintf(f, a...)) }
func (c *captureLogs) Warningf(f string, a ...any) { c.add("WARNING", fmt.Sprintf(f, a...)) }
func (c *captureLogs) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	c.lines = nil
	return l
}
func (c *captureLogs) expect(t *testing.T, want ...string) {
	t.Helper()
	got := c.take()
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %d lines containing %q", got, len(want), want)
	}
	for i := range want {
		// want is "SEVERITY: message start"; the component's tag sits
		// between them.
		sev, msg, _ := strings.Cut(want[i], ": ")
		if !strings.HasPrefix(got[i], sev+": ") || !strings.Contains(got[i], msg) {
			t.Fatalf("line %d %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

// TestDecide_LogsEachChangeOnce: Decide logs an endpoint's state change
// once, from "new" the first time (except to connecting), as a warning when it leaves rotation,
// and panic mode's start (warning) and end (info) once each; a breaker
// transition is logged with its reason. Nothing is logged when nothing
// changed.
func TestDecide_LogsEachChangeOnce(t *testing.T) {
	logs := &captureLogs{}
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(DefaultConfig(), Options{Probing: true, Breaker: testBreaker(), Now: clk.now, LogPrefix: "[set] ", Logger: logs})
	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}})
	s.Decide()
	logs.expect(t) // new -> connecting is not news
	connect(s, s.Get("a"), true)
	s.SetConn(s.Get("b"), ConnReady)
	s.Decide()
	logs.expect(t, "INFO: [set] endpoint a: connecting -> usable: ok", "INFO: [set] endpoint b: connecting -> usable: ok")
	s.Decide()
	logs.expect(t)
	s.SetHealth(s.Get("a"), false, "NOT_SERVING")
	s.Decide()
	logs.expect(t, "WARNING: [set] endpoint a: usable -> unhealthy: health probe: NOT_SERVING")
	trip(t, s.Get("b"))
	logs.expect(t, "INFO: [set] endpoint b: breaker closed -> open: 5 consecutive failures")
	s.Decide()
	logs.expect(t, "WARNING: [set] endpoint b: usable -> ejected", "WARNING: [set] panic mode: 0 of 2 endpoints usable")
	s.Decide()
	logs.expect(t)
	s.SetHealth(s.Get("a"), true, "SERVING")
	s.Decide()
	logs.expect(t, "INFO: [set] endpoint a: unhealthy -> usable", "INFO: [set] panic mode over: 1 of 2 endpoints usable")

	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}})
	s.SetConn(s.Get("c"), ConnReady)
	s.SetHealth(s.Get("c"), false, "NOT_SERVING")
	s.Decide()
	logs.expect(t, "WARNING: [set] endpoint c: new -> unhealthy: health probe: NOT_SERVING", "WARNING: [set] panic mode: 1 of 3 endpoints usable")

	// A first connection that fails and is tried again.
	s.Update([]Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}, {Key: "d", Weight: 1}})
	s.SetConn(s.Get("d"), ConnConnecting)
	s.Decide()
	logs.expect(t)
	s.SetConn(s.Get("d"), ConnFailure)
	s.Decide()
	logs.expect(t, "WARNING: [set] endpoint d: connecting -> disconnected: not connected (transient-failure)")
	s.SetConn(s.Get("d"), ConnConnecting)
	s.Decide()
	logs.expect(t, "INFO: [set] endpoint d: disconnected -> connecting")

	// An endpoint usable at its first decision (an HTTP endpoint without
	// probing is Ready at once): Usable is the zero State, and it must
	// still be logged.
	h := New(DefaultConfig(), Options{Now: clk.now, LogPrefix: "[http] ", Logger: logs})
	h.Update([]Spec{{Key: "x", Weight: 1}})
	h.SetConn(h.Get("x"), ConnReady)
	h.Decide()
	logs.expect(t, "INFO: [http] endpoint x: new -> usable: ok")
}

// TestView_BeforeDecideAndCounters: before its first decision an endpoint
// is reported as new; a View carries the picker's counters and, given the
// pickers' decay, the latency estimate; taking one leaves the Set usable.
func TestView_BeforeDecideAndCounters(t *testing.T) {
	s := New(DefaultConfig(), Options{})
	s.Update([]Spec{{Key: "a", Weight: 1}})
	if e := s.View(0).Endpoints[0]; e.State != Connecting || e.Reason != "new, not decided yet" {
		t.Fatalf("before the first decision: %v %q, want connecting, new", e.State, e.Reason)
	}
	s.SetConn(s.Get("a"), ConnReady)
	d := s.Decide()
	p := picker.New(picker.Config{ChoiceCount: 2, ActiveRequestBias: 1, LatencyAware: true, LatencyDecay: picker.DefaultConfig().LatencyDecay}, d.Entries)
	for range 3 {
		i, tok, _ := p.Select()
		time.Sleep(time.Millisecond) // a measurable latency on the real clock
		p.Finish(i, tok, picker.Outcome{Verdict: picker.Success, Timing: picker.Timed})
	}
	p.Select() // one left in flight
	e := s.View(time.Hour).Endpoints[0]
	if e.InFlight != 1 || e.Picks != 4 || e.Latency <= 0 {
		t.Fatalf("view: in flight %d, picks %d, latency %v; want 1, 4, > 0", e.InFlight, e.Picks, e.Latency)
	}
	if e := s.View(0).Endpoints[0]; e.Latency != 0 {
		t.Fatalf("view without the pickers' decay: latency %v, want none", e.Latency)
	}
	if s.Len() != 1 { // would deadlock if View kept the lock
		t.Fatal("Len after View")
	}
}

// TestSet_ConcurrentReaders: the readers (Len, Records, Counts, Panicking,
// Results, View) are safe while another goroutine updates and decides; run
// with -race.
func TestSet_ConcurrentReaders(t *testing.T) {
	s, _, _ := newSet(t, 3, DefaultConfig())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			specs := []Spec{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}}
			if i%2 == 0 {
				specs = append(specs, Spec{Key: "c", Weight: 1})
			}
			s.Update(specs)
			s.Decide()
		}
	}()
	for range 200 {
		_ = s.Len()
		_ = s.Records()
		_, _ = s.Counts()
		_ = s.Panicking()
		_ = s.Results()
		_ = s.View(time.Second)
	}
	wg.Wait()
}
