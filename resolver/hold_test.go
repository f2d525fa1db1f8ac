package resolver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// buildHold builds a resolver over a fresh test source with the fake clock
// and a metrics recorder.
func buildHold(t *testing.T, query string) (*testSource, *recorder, *fakeClock, *testutil.MetricsRecorder, string) {
	t.Helper()
	src, name := registerTestSource()
	clk := newFakeClock()
	rec := newRecorder()
	mr := testutil.NewMetricsRecorder()
	target := "fulcrum://" + name + "/svc" + query
	r, err := (&builder{clk: clk, handled: rec.markHandled}).Build(mustTarget(t, target), rec, resolver.BuildOptions{MetricsRecorder: mr})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return src, rec, clk, mr, target
}

func resolverState(t *testing.T, target string) fulcrumz.ResolverState {
	t.Helper()
	for _, r := range fulcrumz.Resolvers() {
		if r.Target == target {
			return r.ResolverState
		}
	}
	t.Fatalf("resolver %s not in fulcrumz.Resolvers()", target)
	return fulcrumz.ResolverState{}
}

// An authoritative empty set from a registry keeps the channel's endpoints
// for emptyGrace (default 45s); metrics and fulcrumz say so meanwhile; a set
// before the grace ends the hold and nothing empty ever reaches the channel.
func TestEmptyHold_ShortEmptyNeverReachesChannel(t *testing.T) {
	src, rec, clk, mr, target := buildHold(t, "")
	src.send(Update{Endpoints: eps("10.0.0.1:1", "10.0.0.2:1")})
	rec.waitEvents(t, 1)
	rec.waitHandled(t, 1)

	start := clk.Now()
	src.send(Update{Authoritative: true, HoldEmpty: true})
	rec.waitHandled(t, 2)
	assert.Equal(t, []time.Duration{DefaultEmptyGrace}, clk.waitTimers(t, 1), "the hold's timer")
	assertHeld(t, rec.all(), []string{"10.0.0.1:1", "10.0.0.2:1"}, false, true)
	held := metrics.ResolverEmptyHeld.Name + "{" + target + "}"
	assert.EqualValues(t, 1, mr.Gauges()[held], "empty_held while holding")
	assert.EqualValues(t, 1, mr.Count(metrics.ResolverEmptyHolds.Name, target))
	st := resolverState(t, target)
	require.NotNil(t, st.EmptyHeldSince, "fulcrumz must show the hold: %+v", st)
	assert.True(t, st.EmptyHeldSince.Equal(start), "held since %v, want %v", st.EmptyHeldSince, start)
	assert.True(t, st.EmptyHeldUntil.Equal(start.Add(DefaultEmptyGrace)), "held until %v", st.EmptyHeldUntil)
	assert.Equal(t, 2, st.Endpoints)

	// More empty answers do not extend the grace.
	clk.Advance(DefaultEmptyGrace / 2)
	src.send(Update{Authoritative: true, HoldEmpty: true})
	rec.waitHandled(t, 3)
	assert.Equal(t, []time.Duration{DefaultEmptyGrace / 2}, clk.activeTimers())

	clk.Advance(DefaultEmptyGrace/2 - time.Nanosecond)
	src.send(Update{Endpoints: eps("10.0.0.1:1", "10.0.0.2:1")})
	rec.waitHandled(t, 4)
	clk.waitTimers(t, 0)
	clk.Advance(time.Hour)
	// The same set again ends the hold: the channel's set is no longer
	// marked held, and nothing else changes.
	assertHeld(t, rec.all(), []string{"10.0.0.1:1", "10.0.0.2:1"}, false, true, false)
	assert.EqualValues(t, 0, mr.Gauges()[held], "empty_held after the hold")
	st = resolverState(t, target)
	assert.Nil(t, st.EmptyHeldSince, "%+v", st)
}

// An empty answer that lasts the whole grace does empty the channel.
func TestEmptyHold_PersistentEmptyEmptiesAfterGrace(t *testing.T) {
	src, rec, clk, mr, target := buildHold(t, "?emptyGrace=10s")
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	rec.waitEvents(t, 1)
	src.send(Update{Authoritative: true, HoldEmpty: true})
	assert.Equal(t, []time.Duration{10 * time.Second}, clk.waitTimers(t, 1))
	clk.Advance(10*time.Second - time.Nanosecond)
	rec.waitHandled(t, 2)
	assertHeld(t, rec.all(), []string{"10.0.0.1:1"}, false, true)
	clk.Advance(time.Nanosecond)
	evs := rec.waitEvents(t, 3)
	require.Len(t, evs, 3)
	assert.NoError(t, evs[2].err)
	assert.Empty(t, evs[2].state.Endpoints)
	assert.False(t, attrs.EmptyHeld(evs[2].state), "the empty set is not held")
	assert.EqualValues(t, 0, mr.Gauges()[metrics.ResolverEmptyHeld.Name+"{"+target+"}"])

	// The empty set is now the set: more empty answers change nothing, a
	// set is pushed at once.
	src.send(Update{Authoritative: true, HoldEmpty: true})
	rec.waitHandled(t, 3)
	assert.Empty(t, clk.activeTimers(), "no hold when there is nothing to keep")
	src.send(Update{Endpoints: eps("10.0.0.2:1")})
	evs = rec.waitEvents(t, 4)
	assert.Equal(t, []string{"10.0.0.2:1"}, addrsOf(evs[3].state))
}

// An error ends a hold (the last-known-good rule takes over); the next
// empty answer starts a new grace.
func TestEmptyHold_ErrorEndsHold(t *testing.T) {
	src, rec, clk, _, target := buildHold(t, "?emptyGrace=10s")
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	rec.waitEvents(t, 1)
	src.send(Update{Authoritative: true, HoldEmpty: true})
	clk.waitTimers(t, 1)
	clk.Advance(8 * time.Second)
	src.send(Update{Err: errors.New("registry down")})
	rec.waitHandled(t, 3)
	clk.waitTimers(t, 0)
	assert.Contains(t, resolverState(t, target).SourceError, "registry down")
	src.send(Update{Authoritative: true, HoldEmpty: true})
	// Handled, hence published to fulcrumz: the hold timer exists before
	// the status is published, so waiting for the timer is not enough.
	rec.waitHandled(t, 4)
	assert.Equal(t, []time.Duration{10 * time.Second}, clk.waitTimers(t, 1))
	assert.Empty(t, resolverState(t, target).SourceError, "an empty answer is an answer")
	clk.Advance(9 * time.Second)
	rec.waitHandled(t, 4)
	// Held, unheld by the error (the last known good set is served), held
	// again; the endpoints never change.
	assertHeld(t, rec.all(), []string{"10.0.0.1:1"}, false, true, false, true)
}

// assertHeld checks that the channel got one state per flag, each with
// addrs, marked held (attrs.EmptyHeld) as flags say.
func assertHeld(t *testing.T, evs []event, addrs []string, flags ...bool) {
	t.Helper()
	require.Len(t, evs, len(flags), "%+v", evs)
	for i, e := range evs {
		require.NoError(t, e.err)
		assert.Equal(t, addrs, addrsOf(e.state), "state %d", i)
		assert.Equal(t, flags[i], attrs.EmptyHeld(e.state), "state %d marked held", i)
	}
}

// emptyGrace=0 restores "at once"; with nothing in the channel there is
// nothing to hold.
func TestEmptyHold_Disabled(t *testing.T) {
	src, rec, clk, _, _ := buildHold(t, "?emptyGrace=0s")
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	rec.waitEvents(t, 1)
	src.send(Update{Authoritative: true, HoldEmpty: true})
	evs := rec.waitEvents(t, 2)
	assert.Empty(t, evs[1].state.Endpoints)
	assert.Empty(t, clk.activeTimers())

	src2, rec2, clk2, _, _ := buildHold(t, "")
	src2.send(Update{Authoritative: true, HoldEmpty: true})
	evs = rec2.waitEvents(t, 1)
	assert.NoError(t, evs[0].err)
	assert.Empty(t, evs[0].state.Endpoints, "a first empty answer is pushed: there is nothing to keep")
	assert.Empty(t, clk2.activeTimers())
}

// An authoritative empty set without HoldEmpty (static, file, DNS-SRV
// ".": written down by a person) takes effect at once, as before.
func TestEmptyHold_OnlyWhenAsked(t *testing.T) {
	src, rec, clk, _, _ := buildHold(t, "")
	src.send(Update{Endpoints: eps("10.0.0.1:1"), HoldEmpty: true})
	rec.waitEvents(t, 1)
	src.send(Update{Authoritative: true})
	evs := rec.waitEvents(t, 2)
	assert.Empty(t, evs[1].state.Endpoints)
	assert.Empty(t, clk.activeTimers())

	path := filepath.Join(t.TempDir(), "svc.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["10.0.0.1:1"]}]}`), 0o600))
	frec := build(t, "fulcrum://file/"+path+"?interval=10ms", clock.Real())
	frec.waitEvents(t, 1)
	writeAtomic(t, path, `{"endpoints":[],"authoritative":true}`)
	evs = frec.waitEvents(t, 2)
	assert.NoError(t, evs[1].err)
	assert.Empty(t, evs[1].state.Endpoints, "an authoritative empty file empties the channel at once")
}

func TestEmptyHold_DefaultAndOption(t *testing.T) {
	tc, err := parseTarget(mustTarget(t, "fulcrum://static/127.0.0.1:1"))
	require.NoError(t, err)
	assert.Equal(t, DefaultEmptyGrace, tc.emptyGrace)
	tc, err = parseTarget(mustTarget(t, "fulcrum://static/127.0.0.1:1?emptyGrace=2m"))
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, tc.emptyGrace)
	assert.Equal(t, "127.0.0.1:1", tc.name, "emptyGrace is consumed by the common layer")
}

// A resolver is listed by fulcrumz from Build to Close.
func TestFulcrumz_ListedUntilClose(t *testing.T) {
	src, name := registerTestSource()
	target := "fulcrum://" + name + "/svc"
	r, err := (&builder{clk: newFakeClock()}).Build(mustTarget(t, target), newRecorder(), resolver.BuildOptions{})
	require.NoError(t, err)
	src.send(Update{Endpoints: eps("10.0.0.1:1", "10.0.0.2:1")})
	require.Eventually(t, func() bool { return resolverState(t, target).Endpoints == 2 }, defaultTestTimeout, time.Millisecond)
	assert.Equal(t, name, resolverState(t, target).Source)
	r.Close()
	for _, rs := range fulcrumz.Resolvers() {
		assert.NotEqual(t, target, rs.Target, "still listed after Close")
	}
}
