package consul_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// TestSource_IndexZeroBlocksOnOne: a server with the index-0 bug answers
// X-Consul-Index: 0. Sending 0 back would never block (a busy loop); the
// source blocks on 1 instead, so each query lasts the whole wait and the
// request count over a period is bounded by period/wait, not by the rate
// limit.
func TestSource_IndexZeroBlocksOnOne(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	s.SetIndexZero(true)
	const wait = 100 * time.Millisecond
	src, err := consul.NewSource(c, consul.Options{Wait: wait, MinInterval: time.Millisecond})
	require.NoError(t, err)
	start := time.Now()
	rec, stop := watch(t, src, "web")
	rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	time.Sleep(600 * time.Millisecond)
	stop()
	elapsed := time.Since(start)
	reqs := s.Requests()
	require.Zero(t, reqs[0].Index)
	for i, r := range reqs[1:] {
		require.Equal(t, uint64(1), r.Index, "query %d", i+1)
	}
	// Each blocking query lasts at least wait; one more for the first.
	require.LessOrEqual(t, len(reqs), int(elapsed/wait)+2, "%d queries in %v", len(reqs), elapsed)
	require.Len(t, rec.all(), 1, "the same answer is not reported again: %s", rec)
}

// TestSource_ResetsIndexWhenItGoesBackwards: after a snapshot restore the
// index drops below the one the source blocks on. The blocked query ends
// with its wait, carrying the lower index; the source then queries once
// with index 0 and blocks on the new index, so a later change is seen at
// once instead of after the index climbs past the old one.
func TestSource_ResetsIndexWhenItGoesBackwards(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	for i := range 10 {
		s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80 + i})
	}
	high := s.Index()
	const wait = 500 * time.Millisecond
	src, err := consul.NewSource(c, consul.Options{Wait: wait, MinInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	rec, _ := watch(t, src, "web")
	i := rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	time.Sleep(50 * time.Millisecond)

	s.RestoreSnapshot(2)
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 99}) // index 3
	i = rec.waitFor(t, wait+wait/16+time.Second, i+1, "the restored set", func(u resolver.Update) bool { return len(u.Endpoints) == 2 })
	require.Eventually(t, func() bool {
		r := s.Requests()
		return r[len(r)-1].Index == 3
	}, defaultTestTimeout, 5*time.Millisecond, "the source blocks on the restored index 3")
	s.Register(consultest.Instance{ID: "c", Service: "web", Port: 98}) // index 4 < high
	rec.waitFor(t, changeDeadline, i+1, "the next change", func(u resolver.Update) bool { return len(u.Endpoints) == 3 })

	var seq []uint64
	for _, r := range s.Requests() {
		seq = append(seq, r.Index)
	}
	require.Contains(t, seq, high)
	k := indexOf(seq, high)
	require.Equal(t, []uint64{high, 0, 3}, seq[k:k+3], "blocked on %d, reset to 0, then blocked on 3: %v", high, seq)
}

func indexOf(s []uint64, v uint64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestSource_BacksOffOnErrors: while Consul answers 500, pauses double from
// BackoffMin to BackoffMax, each drawn from [b/2, b); the outage is reported
// once, never as an empty set; the first success resets the back-off.
func TestSource_BacksOffOnErrors(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	s.SetFailure(500, "No cluster leader")
	vt := newVirtualTime(time.Minute)
	recovered := false
	vt.onSleep = func(n int, elapsed time.Duration) {
		if n == 9 {
			s.SetFailure(0, "")
			recovered = true
		}
	}
	opts := consul.Options{BackoffMin: 100 * time.Millisecond, BackoffMax: 1600 * time.Millisecond, MinInterval: 50 * time.Millisecond}
	src, err := consul.NewSourceWithClock(c, opts, vt, constRand(0.5))
	require.NoError(t, err)
	rec, stop := watch(t, src, "web")
	rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return u.Err == nil })
	stop()
	require.True(t, recovered)
	ms := time.Millisecond
	// b = 100, 200, 400, 800, 1600, 1600, ...; pause = b/2 + 0.5*b/2.
	want := []time.Duration{75 * ms, 150 * ms, 300 * ms, 600 * ms, 1200 * ms, 1200 * ms, 1200 * ms, 1200 * ms, 1200 * ms}
	require.Equal(t, want, vt.Pauses()[:9])
	u := rec.all()
	require.Len(t, u, 2, "%s", rec)
	require.ErrorContains(t, u[0].Err, `consul: querying the health of service "web": Unexpected response code: 500 (No cluster leader)`)
	require.Equal(t, []string{"127.0.0.1:80"}, addrs(u[1]))
}

// TestSource_LongOutageKeepsOneErrorAndBoundedRate: a 30 s outage (virtual
// time: no test waits 30 s) with 5xx answers. The source reports one error
// and nothing else, so the resolver keeps serving its last good set; the
// request count stays within the back-off bound; the first answer after
// the outage is reported at once.
func TestSource_LongOutageKeepsOneErrorAndBoundedRate(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	const outage = 30 * time.Second
	opts := consul.Options{BackoffMin: 500 * time.Millisecond, BackoffMax: 4 * time.Second}
	vt := newVirtualTime(outage + 10*time.Second)
	var failedAt time.Duration
	var reqsAtStart, reqsInOutage int
	vt.onSleep = func(n int, elapsed time.Duration) {
		switch {
		case n == 1:
			// One good answer, then Consul fails for outage.
			s.SetFailure(503, "rate limit exceeded")
			failedAt, reqsAtStart = elapsed, len(s.Requests())
		case failedAt > 0 && elapsed >= failedAt+outage && reqsInOutage == 0:
			s.SetFailure(0, "")
			reqsInOutage = len(s.Requests()) - reqsAtStart
			s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81})
		}
	}
	src, err := consul.NewSourceWithClock(c, opts, vt, constRand(0))
	require.NoError(t, err)
	rec, _ := watch(t, src, "web")
	rec.waitFor(t, defaultTestTimeout, 0, "the set after the outage", func(u resolver.Update) bool { return len(u.Endpoints) == 2 })
	u := rec.all()
	require.Len(t, u, 3, "set, one error, set: %s", rec)
	require.Equal(t, []string{"127.0.0.1:80"}, addrs(u[0]))
	require.ErrorContains(t, u[1].Err, "503 (rate limit exceeded)")
	// Worst case (every draw at the bottom of [b/2, b)): pauses 250ms,
	// 500ms, 1s, then 2s each: 3 + (30s - 1.75s)/2s + 1 queries.
	require.Positive(t, reqsInOutage)
	require.LessOrEqual(t, reqsInOutage, 3+int((outage-1750*time.Millisecond)/(2*time.Second))+1)
	t.Logf("%d queries during a %v outage", reqsInOutage, outage)
}

// TestSource_SlowAnswersAreAbandoned: an answer slower than
// Wait + Wait/16 + Timeout is given up as an error (the last good set
// stays), and the source recovers when answers are fast again.
func TestSource_SlowAnswersAreAbandoned(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	src, err := consul.NewSource(c, consul.Options{Wait: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, MinInterval: 10 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	require.NoError(t, err)
	rec, _ := watch(t, src, "web")
	i := rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return u.Err == nil })
	s.SetDelay(2 * time.Second)
	start := time.Now()
	i = rec.waitFor(t, defaultTestTimeout, i+1, "an error", func(u resolver.Update) bool { return u.Err != nil })
	require.ErrorContains(t, rec.all()[i].Err, "context deadline exceeded")
	require.Less(t, time.Since(start), 2*time.Second, "abandoned before the slow answer came")
	s.SetDelay(0)
	rec.waitFor(t, defaultTestTimeout, i+1, "the set again", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
}

// TestSource_EmptyAnswers pins when an answer without usable instances is
// authoritative: only when Consul, with a known leader and a valid index,
// lists no instance of the service at all.
func TestSource_EmptyAnswers(t *testing.T) {
	opts := consul.Options{Wait: 200 * time.Millisecond, MinInterval: 10 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}
	start := func(t *testing.T) (*consultest.Server, *recorder, int) {
		checkLeaks(t)
		s, c := newFake(t, consultest.Options{})
		s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
		s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81})
		src, err := consul.NewSource(c, opts)
		require.NoError(t, err)
		rec, _ := watch(t, src, "web")
		i := rec.waitFor(t, defaultTestTimeout, 0, "two instances", func(u resolver.Update) bool { return len(u.Endpoints) == 2 })
		return s, rec, i
	}
	isErr := func(substr string) func(resolver.Update) bool {
		return func(u resolver.Update) bool { return u.Err != nil && strings.Contains(u.Err.Error(), substr) }
	}

	t.Run("deregistered service is authoritative", func(t *testing.T) {
		s, rec, i := start(t)
		s.Deregister("a")
		s.Deregister("b")
		i = rec.waitFor(t, changeDeadline, i+1, "an empty set", func(u resolver.Update) bool { return u.Err == nil && len(u.Endpoints) == 0 })
		require.True(t, rec.all()[i].Authoritative)
	})
	t.Run("all instances critical is not", func(t *testing.T) {
		s, rec, i := start(t)
		s.SetStatus("a", api.HealthCritical)
		s.SetStatus("b", api.HealthMaint)
		rec.waitFor(t, changeDeadline, i+1, "an error", isErr(`consul: service "web": no instance to use: none of its 2 registered instances is passing its checks`))
		s.SetStatus("b", api.HealthPassing)
		rec.waitFor(t, changeDeadline, i+1, "b back", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	})
	t.Run("empty answer without a leader is not", func(t *testing.T) {
		s, rec, i := start(t)
		s.SetKnownLeader(false)
		s.SetEmptyAnswers(true)
		s.Touch("web")
		rec.waitFor(t, changeDeadline, i+1, "an error", isErr("X-Consul-KnownLeader: false"))
		s.SetKnownLeader(true)
		s.SetEmptyAnswers(false)
		s.Touch("web")
		rec.waitFor(t, changeDeadline, i+1, "the set again", func(u resolver.Update) bool { return len(u.Endpoints) == 2 })
	})
	t.Run("empty answer with index 0 is not", func(t *testing.T) {
		s, rec, i := start(t)
		s.SetIndexZero(true)
		s.SetEmptyAnswers(true)
		rec.waitFor(t, changeDeadline, i+1, "an error", isErr("without a valid X-Consul-Index"))
	})
	t.Run("empty answer whose index went backwards waits for the re-query", func(t *testing.T) {
		s, rec, i := start(t)
		for range 5 {
			s.Touch("web") // same data, higher index: not reported
		}
		high := s.Index()
		require.Eventually(t, func() bool {
			r := s.Requests()
			return r[len(r)-1].Index == high
		}, defaultTestTimeout, 5*time.Millisecond, "the source blocks on %d", high)
		s.RestoreSnapshot(1)
		s.Deregister("a")
		s.Deregister("b") // index 3, below the one blocked on
		i = rec.waitFor(t, defaultTestTimeout, i+1, "an empty set", func(u resolver.Update) bool { return u.Err == nil && len(u.Endpoints) == 0 })
		require.True(t, rec.all()[i].Authoritative)
		for _, u := range rec.all() {
			require.NoError(t, u.Err, "no error for the backwards answer: %s", rec)
		}
		var seq []uint64
		for _, r := range s.Requests() {
			seq = append(seq, r.Index)
		}
		k := indexOf(seq, high)
		require.Equal(t, []uint64{high, 0}, seq[k:k+2], "the empty backwards answer was re-queried with index 0 before being reported: %v", seq)
	})
}
