package consul_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

const (
	defaultTestTimeout = 5 * time.Second
	// changeDeadline is how fast a change in Consul must reach the report
	// function (or an RPC): a blocked query returns in milliseconds, the
	// rest is margin for a loaded machine.
	changeDeadline = time.Second
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkLeaks verifies at the end of t that every goroutine started during
// t is gone. Call it first so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// newFake starts a fake Consul and a client for it, both closed (and the
// client's idle connections too) when the test ends.
func newFake(t *testing.T, opts consultest.Options) (*consultest.Server, *api.Client) {
	t.Helper()
	s := consultest.NewServer(opts)
	cfg, tr := s.Config()
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		tr.CloseIdleConnections()
	})
	return s, c
}

// recorder keeps every Update a watch reported.
type recorder struct {
	mu      sync.Mutex
	updates []resolver.Update
	changed chan struct{} // closed and replaced on every report
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) report(u resolver.Update) {
	r.mu.Lock()
	r.updates = append(r.updates, u)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) all() []resolver.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]resolver.Update(nil), r.updates...)
}

// waitFor waits until an update at position >= from satisfies ok and
// returns its position.
func (r *recorder) waitFor(t *testing.T, timeout time.Duration, from int, what string, ok func(resolver.Update) bool) int {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.updates); i++ {
			if ok(r.updates[i]) {
				r.mu.Unlock()
				return i
			}
		}
		from = len(r.updates)
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no update with %s within %v; got %s", what, timeout, r)
		}
	}
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := ""
	for i, u := range r.updates {
		s += fmt.Sprintf("\n  %d: %s", i, describe(u))
	}
	return s
}

func describe(u resolver.Update) string {
	if u.Err != nil {
		return "err " + u.Err.Error()
	}
	var addrs []string
	for _, e := range u.Endpoints {
		addrs = append(addrs, fmt.Sprintf("%v=%d", e.Addresses, e.Weight))
	}
	return fmt.Sprintf("set %v authoritative=%v", addrs, u.Authoritative)
}

// addrs returns the first address of each endpoint.
func addrs(u resolver.Update) []string {
	var out []string
	for _, e := range u.Endpoints {
		out = append(out, e.Addresses[0])
	}
	return out
}

// watch starts src on name with a recorder; the watch stops when the test
// ends.
func watch(t *testing.T, src resolver.Source, name string) (*recorder, func()) {
	t.Helper()
	rec := newRecorder()
	_, stop, err := src.Watch(context.Background(), name, rec.report)
	if err != nil {
		t.Fatalf("Watch(%q): %v", name, err)
	}
	t.Cleanup(stop)
	return rec, stop
}

// virtualTime is the watch's clock: a pause (a timer) advances it at once
// and is recorded, and the watch is parked for good once it would pause
// past end. onSleep, if set, runs before each pause ends (with the pause's
// number), so a test can change the fake Consul at a given point of the run.
type virtualTime struct {
	mu      sync.Mutex
	now     time.Time
	start   time.Time
	end     time.Duration
	pauses  []time.Duration
	onSleep func(n int, elapsed time.Duration)
	done    chan struct{} // closed when a pause is first refused
	once    sync.Once
}

func newVirtualTime(end time.Duration) *virtualTime {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &virtualTime{now: t0, start: t0, end: end, done: make(chan struct{})}
}

func (v *virtualTime) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

func (v *virtualTime) Since(t time.Time) time.Duration { return v.Now().Sub(t) }

// NewTimer is a pause of the watch: it returns a timer that has already
// fired, d later, or one that never fires when that is past end.
func (v *virtualTime) NewTimer(d time.Duration) resolver.Timer {
	t := &virtualTimer{c: make(chan time.Time, 1)}
	v.mu.Lock()
	if v.now.Add(d).Sub(v.start) > v.end {
		v.mu.Unlock()
		v.once.Do(func() { close(v.done) })
		return t
	}
	v.now = v.now.Add(d)
	v.pauses = append(v.pauses, d)
	n, now, elapsed, hook := len(v.pauses), v.now, v.now.Sub(v.start), v.onSleep
	v.mu.Unlock()
	if hook != nil {
		hook(n, elapsed)
	}
	t.c <- now
	return t
}

func (v *virtualTime) AfterFunc(time.Duration, func()) resolver.Timer {
	panic("virtualTime: the watch uses no AfterFunc")
}

type virtualTimer struct{ c chan time.Time }

func (t *virtualTimer) C() <-chan time.Time      { return t.c }
func (t *virtualTimer) Stop() bool               { return false }
func (t *virtualTimer) Reset(time.Duration) bool { panic("virtualTime: the watch resets no timer") }

func (v *virtualTime) Pauses() []time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]time.Duration(nil), v.pauses...)
}

// wait waits until the watch driven by v has run out of virtual time: its
// last Sleep returned false, so it sends no more requests.
func (v *virtualTime) wait(t *testing.T) {
	t.Helper()
	select {
	case <-v.done:
	case <-time.After(defaultTestTimeout):
		t.Fatalf("the watch did not use up %v of virtual time within %v", v.end, defaultTestTimeout)
	}
}

// constRand returns r for every draw.
func constRand(r float64) func() float64 { return func() float64 { return r } }
