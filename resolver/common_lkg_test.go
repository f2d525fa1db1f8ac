package resolver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// Each bad update is awaited with waitHandled before the next one is sent:
// report replaces a queued update with a later set, so without that wait the
// bad update could be superseded and never reach the branch under test.

func TestCommon_LastKnownGoodKeepsSetOnError(t *testing.T) {
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc", clock.Real())

	src.send(Update{Endpoints: eps("10.0.0.1:1", "10.0.0.2:1")})
	rec.waitEvents(t, 1)
	rec.waitHandled(t, 1)
	src.send(Update{Err: errors.New("registry down")})
	rec.waitHandled(t, 2)
	src.send(Update{Err: errors.New("registry still down")})
	rec.waitHandled(t, 3)
	require.Len(t, rec.all(), 1, "errors after a good set must neither empty the list nor be reported: %+v", rec.all())

	src.send(Update{Endpoints: eps("10.0.0.3:1")})
	evs := rec.waitEvents(t, 2)
	require.Len(t, evs, 2, "%+v", evs)
	assert.NoError(t, evs[1].err)
	assert.Equal(t, []string{"10.0.0.3:1"}, addrsOf(evs[1].state))
}

func TestCommon_ErrorWithoutGoodSetIsReported(t *testing.T) {
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc", clock.Real())

	srcErr := errors.New("registry down")
	src.send(Update{Err: srcErr})
	evs := rec.waitEvents(t, 1)
	require.Error(t, evs[0].err)
	assert.ErrorIs(t, evs[0].err, srcErr)
	assert.Contains(t, evs[0].err.Error(), `target "fulcrum://`+name+`/svc"`)

	// Once a good set arrives it is pushed.
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	evs = rec.waitEvents(t, 2)
	assert.Equal(t, []string{"10.0.0.1:1"}, addrsOf(evs[1].state))
}

// An error streak longer than lkgTTL drops the last good set: the channel
// gets an empty state and the error. The TTL runs from the first error, not
// from the last good update, and a recovery disarms it.
func TestCommon_LastKnownGoodExpiresAfterTTL(t *testing.T) {
	clk := newFakeClock()
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc?lkgTTL=5m", clk)

	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	rec.waitEvents(t, 1)
	clk.Advance(time.Hour) // a long-stable set must not count against the TTL

	// Error then recovery: the timer is armed, then stopped.
	src.send(Update{Err: errors.New("blip")})
	assert.Equal(t, []time.Duration{5 * time.Minute}, clk.waitTimers(t, 1))
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	clk.waitTimers(t, 0)

	srcErr := errors.New("registry down")
	src.send(Update{Err: srcErr})
	clk.waitTimers(t, 1)
	clk.Advance(5*time.Minute - time.Nanosecond)
	rec.waitHandled(t, 4)
	assert.Len(t, rec.all(), 1, "nothing may happen before the TTL")
	clk.Advance(time.Nanosecond)
	evs := rec.waitEvents(t, 3)
	assert.Empty(t, evs[1].state.Endpoints, "the stale set is dropped")
	assert.NoError(t, evs[1].err)
	assert.ErrorIs(t, evs[2].err, srcErr)

	// With no good set left, further errors are reported.
	src.send(Update{Err: srcErr})
	evs = rec.waitEvents(t, 4)
	assert.ErrorIs(t, evs[3].err, srcErr)
	// And the same set as before is pushed again when the source recovers.
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	evs = rec.waitEvents(t, 5)
	assert.Equal(t, []string{"10.0.0.1:1"}, addrsOf(evs[4].state))
}

// The lkgTTL is counted from the FIRST failure of a streak: later errors,
// different or not, and suspicious empty sets, must not restart it.
func TestCommon_LastKnownGoodTTLCountsFromFirstFailure(t *testing.T) {
	clk := newFakeClock()
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc?lkgTTL=5m", clk)

	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	rec.waitEvents(t, 1)
	src.send(Update{Err: errors.New("registry down")})
	rec.waitHandled(t, 2)
	require.Equal(t, []time.Duration{5 * time.Minute}, clk.activeTimers())

	clk.Advance(3 * time.Minute)
	src.send(Update{Err: errors.New("registry timeout")})
	rec.waitHandled(t, 3)
	src.send(Update{Endpoints: []Endpoint{}}) // suspicious empty: also a failure
	rec.waitHandled(t, 4)
	assert.Equal(t, []time.Duration{2 * time.Minute}, clk.activeTimers(), "a later failure re-armed the TTL")
	require.Len(t, rec.all(), 1)

	clk.Advance(2 * time.Minute)
	evs := rec.waitEvents(t, 3)
	assert.Empty(t, evs[1].state.Endpoints, "5m after the first failure the stale set is dropped")
	assert.ErrorContains(t, evs[2].err, errSuspiciousEmpty.Error(), "the latest failure is reported")
}

// A TTL that fires after the source recovered must not drop the fresh set
// (the timer may have fired before the recovery was handled).
func TestCommon_LastKnownGoodStaleTTLIgnored(t *testing.T) {
	r := newFulcrumResolver("t", targetConfig{lkgTTL: time.Minute}, newRecorder(), newFakeClock())
	rec := r.cc.(*recorder)
	r.handle(Update{Endpoints: eps("10.0.0.1:1")})
	r.expire() // not failing: nothing to expire
	r.handleErr(errors.New("down"))
	r.handle(Update{Endpoints: eps("10.0.0.1:1")})
	r.expire()
	require.Len(t, rec.all(), 1, "%+v", rec.all())
	r.serving = false
	r.failing = true
	r.expire() // failing without a set: nothing to drop
	require.Len(t, rec.all(), 1, "%+v", rec.all())
	r.cancel()
}

func TestCommon_EmptySetRule(t *testing.T) {
	t.Run("non-authoritative empty before any set is reported", func(t *testing.T) {
		src, name := registerTestSource()
		rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
		src.send(Update{})
		evs := rec.waitEvents(t, 1)
		assert.ErrorIs(t, evs[0].err, errSuspiciousEmpty)
	})
	t.Run("non-authoritative empty keeps the set", func(t *testing.T) {
		src, name := registerTestSource()
		rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
		src.send(Update{Endpoints: eps("10.0.0.1:1")})
		rec.waitEvents(t, 1)
		src.send(Update{Endpoints: []Endpoint{}})
		rec.waitHandled(t, 2)
		require.Len(t, rec.all(), 1, "a non-authoritative empty set reached the channel: %+v", rec.all())
		src.send(Update{Endpoints: eps("10.0.0.2:1")})
		evs := rec.waitEvents(t, 2)
		require.Len(t, evs, 2)
		assert.Equal(t, []string{"10.0.0.2:1"}, addrsOf(evs[1].state))
	})
	t.Run("all-invalid set keeps the set", func(t *testing.T) {
		src, name := registerTestSource()
		rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
		src.send(Update{Endpoints: eps("10.0.0.1:1")})
		rec.waitEvents(t, 1)
		src.send(Update{Endpoints: []Endpoint{{}, {Addresses: []string{""}}}, Authoritative: true})
		rec.waitHandled(t, 2)
		require.Len(t, rec.all(), 1, "an all-invalid set reached the channel: %+v", rec.all())
		src.send(Update{Endpoints: eps("10.0.0.2:1")})
		evs := rec.waitEvents(t, 2)
		require.Len(t, evs, 2)
		assert.Equal(t, []string{"10.0.0.2:1"}, addrsOf(evs[1].state))
	})
	t.Run("all-invalid set before any set is reported", func(t *testing.T) {
		src, name := registerTestSource()
		rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
		src.send(Update{Endpoints: []Endpoint{{}}, Authoritative: true})
		evs := rec.waitEvents(t, 1)
		assert.ErrorContains(t, evs[0].err, "all 1 endpoints the source reported are invalid")
	})
	t.Run("authoritative empty empties the channel", func(t *testing.T) {
		src, name := registerTestSource()
		rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
		src.send(Update{Endpoints: eps("10.0.0.1:1")})
		rec.waitEvents(t, 1)
		src.send(Update{Authoritative: true})
		evs := rec.waitEvents(t, 2)
		assert.NoError(t, evs[1].err)
		assert.Empty(t, evs[1].state.Endpoints)
	})
}

// funcSource is a Source whose Watch is the function itself.
type funcSource func(ctx context.Context, name string, report func(Update)) (func(), func(), error)

func (f funcSource) Watch(ctx context.Context, name string, report func(Update)) (func(), func(), error) {
	return f(ctx, name, report)
}

// A source that fails Watch fails Build: its context is cancelled and the
// stop function it returned anyway is called, so nothing it started lives on.
func TestCommon_FailedWatchIsCleanedUp(t *testing.T) {
	var watchCtx context.Context
	stopped := 0
	name := "failwatch-test"
	RegisterSource(name, funcSource(func(ctx context.Context, _ string, _ func(Update)) (func(), func(), error) {
		watchCtx = ctx
		return nil, func() { stopped++ }, errors.New("bad name")
	}))
	_, err := (&builder{clk: clock.Real()}).Build(mustTarget(t, "fulcrum://"+name+"/svc"), newRecorder(), resolver.BuildOptions{})
	require.ErrorContains(t, err, `fulcrum resolver: target "fulcrum://failwatch-test/svc": bad name`)
	assert.Error(t, watchCtx.Err(), "the Watch context must be cancelled")
	assert.Equal(t, 1, stopped)
}

// A source may return nil resolveNow and stop functions.
func TestCommon_NilResolveNowAndStop(t *testing.T) {
	name := "nilfuncs-test"
	RegisterSource(name, funcSource(func(_ context.Context, _ string, report func(Update)) (func(), func(), error) {
		report(Update{Endpoints: eps("10.0.0.1:1")})
		return nil, nil, nil
	}))
	rec := newRecorder()
	r, err := (&builder{clk: clock.Real()}).Build(mustTarget(t, "fulcrum://"+name+"/svc"), rec, resolver.BuildOptions{})
	require.NoError(t, err)
	rec.waitEvents(t, 1)
	r.ResolveNow(resolver.ResolveNowOptions{})
	r.Close()
}

// A source that recovers with the set it had before the failure (an etcd
// re-list after an outage that changed nothing) ends the failure without
// pushing anything: the channel already has that set.
func TestCommon_SameSetAfterErrorPushesNothing(t *testing.T) {
	clk := newFakeClock()
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc?lkgTTL=1m", clk)
	src.send(Update{Endpoints: eps("10.0.0.1:1", "10.0.0.2:1")})
	rec.waitEvents(t, 1)
	src.send(Update{Err: errors.New("etcd down")})
	rec.waitHandled(t, 2)
	require.Len(t, clk.activeTimers(), 1)
	src.send(Update{Endpoints: eps("10.0.0.2:1", "10.0.0.1:1")})
	rec.waitHandled(t, 3)
	assert.Empty(t, clk.activeTimers(), "the recovery disarms the TTL")
	assert.Len(t, rec.all(), 1, "the same set was pushed again: %+v", rec.all())
}

// gatedCC is a recorder whose ReportError blocks until the test opens the
// gate, holding the resolver's run goroutine so that reports queue up.
type gatedCC struct {
	*recorder
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedCC) ReportError(err error) {
	g.entered <- struct{}{}
	<-g.gate
	g.recorder.ReportError(err)
}

// While the channel is busy, a queued set replaces everything queued before
// it, and a queued error replaces a queued error: the resolver works off the
// latest state, not a backlog.
func TestCommon_QueueKeepsOnlyTheLatest(t *testing.T) {
	src, name := registerTestSource()
	cc := &gatedCC{recorder: newRecorder(), entered: make(chan struct{}, 16), gate: make(chan struct{})}
	r, err := (&builder{clk: clock.Real(), handled: cc.markHandled}).Build(mustTarget(t, "fulcrum://"+name+"/svc"), cc, resolver.BuildOptions{})
	require.NoError(t, err)
	defer r.Close()

	src.send(Update{Err: errors.New("e1")})
	<-cc.entered // run is inside ReportError(e1)
	src.send(Update{Err: errors.New("e2")})
	src.send(Update{Err: errors.New("e3")})
	close(cc.gate)
	cc.waitHandled(t, 2)
	evs := cc.all()
	require.Len(t, evs, 2, "%+v", evs)
	assert.ErrorContains(t, evs[0].err, "e1")
	assert.ErrorContains(t, evs[1].err, "e3", "e2 was superseded by e3")

	cc.gate, cc.entered = make(chan struct{}), make(chan struct{}, 16)
	src.send(Update{Err: errors.New("e4")})
	<-cc.entered
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	src.send(Update{Err: errors.New("e5")})
	src.send(Update{Endpoints: eps("10.0.0.2:1")})
	src.send(Update{Err: errors.New("e6")})
	close(cc.gate)
	cc.waitHandled(t, 5)
	evs = cc.all()
	require.Len(t, evs, 4, "%+v", evs)
	assert.Equal(t, []string{"10.0.0.2:1"}, addrsOf(evs[3].state), "the first set and e5 were superseded")
}
