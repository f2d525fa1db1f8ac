package consul_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

func TestNewSource_RejectsBadOptions(t *testing.T) {
	checkLeaks(t)
	_, c := newFake(t, consultest.Options{})
	tests := []struct {
		name    string
		cli     *api.Client
		opts    consul.Options
		wantErr string
	}{
		{"nil client", nil, consul.Options{}, "consul: client: nil, must be non-nil"},
		{"wait too short", c, consul.Options{Wait: time.Millisecond}, "consul: wait: 1ms, must be in [10ms, 10m0s]"},
		{"wait too long", c, consul.Options{Wait: 11 * time.Minute}, "consul: wait: 11m0s, must be in [10ms, 10m0s]"},
		{"negative timeout", c, consul.Options{Timeout: -1}, "consul: timeout: -1ns, must be >= 0"},
		{"negative min interval", c, consul.Options{MinInterval: -time.Second}, "consul: minInterval: -1s, must be in [1ms, 1m0s]"},
		{"min interval too long", c, consul.Options{MinInterval: 2 * time.Minute}, "consul: minInterval: 2m0s, must be in [1ms, 1m0s]"},
		{"negative backoff", c, consul.Options{BackoffMin: -time.Second}, "consul: backoffMin: -1s, must be in (0, 1h0m0s]"},
		{"backoff max below min", c, consul.Options{BackoffMin: time.Second, BackoffMax: time.Millisecond}, "consul: backoffMax: 1ms, must be in [backoffMin (1s), 1h0m0s]"},
		{"empty tag", c, consul.Options{Tags: []string{"a", ""}}, `consul: tags[1]: "", must be non-empty`},
		{"bad zone meta key", c, consul.Options{ZoneMeta: "a z"}, `consul: zoneMeta: "a z", must be a Consul meta key: 1 to 128 letters, digits, '-' and '_'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := consul.NewSource(tt.cli, tt.opts)
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestSource_RejectsBadNames(t *testing.T) {
	checkLeaks(t)
	_, c := newFake(t, consultest.Options{})
	src, err := consul.NewSource(c, consul.Options{})
	require.NoError(t, err)
	for _, tt := range []struct{ name, wantErr string }{
		{"", `consul: service: "", must be a non-empty Consul service name without '/', '?', '#', '%' or spaces`},
		{"team/user", `consul: service: "team/user", must be a non-empty Consul service name without '/', '?', '#', '%' or spaces`},
		{"user?zone=a", "consul: parameter zone: not supported, must be one of: dc, ns, partition, stale, tag, warning, zoneMeta"},
		{"user?zoneMeta=", `consul: zoneMeta: "", must be a Consul meta key: 1 to 128 letters, digits, '-' and '_'`},
		{"user?zoneMeta=topology.zone", `consul: zoneMeta: "topology.zone", must be a Consul meta key: 1 to 128 letters, digits, '-' and '_'`},
		{"user?tag=a,,b", `consul: tag: "a,,b", must be a comma-separated list of non-empty tags (tag 1 is empty)`},
		{"user?warning=maybe", `consul: warning: "maybe", must be true or false`},
		{"user?dc=a&dc=b", "consul: parameter dc: given 2 times, must be given at most once"},
	} {
		_, _, err := src.Watch(context.Background(), tt.name, func(resolver.Update) { t.Error("report called") })
		require.EqualError(t, err, tt.wantErr, "name %q", tt.name)
	}
}

// TestSource_ReportsPassingInstances registers passing, warning, critical
// and maintenance instances with weights, tags and meta. By default only the
// passing ones are reported, at the service address or the node's, weighted
// by Weights.Passing, with meta and tags as metadata; the query carries no
// ?passing (the health filter is applied here, see emptyVerdict).
func TestSource_ReportsPassingInstances(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Address: "10.0.0.1", Port: 80, Tags: []string{"v1", "eu"}, Meta: map[string]string{"zone": "z1"}, Weights: api.AgentWeights{Passing: 3, Warning: 1}})
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81}) // node address 127.0.0.1
	s.Register(consultest.Instance{ID: "c", Service: "web", Address: "10.0.0.3", Port: 82, Status: api.HealthWarning, Weights: api.AgentWeights{Passing: 5, Warning: 2}})
	s.Register(consultest.Instance{ID: "d", Service: "web", Address: "10.0.0.4", Port: 83, Status: api.HealthWarning, Weights: api.AgentWeights{Passing: 5, Warning: 0}})
	s.Register(consultest.Instance{ID: "e", Service: "web", Address: "10.0.0.5", Port: 84, Status: api.HealthCritical})
	s.Register(consultest.Instance{ID: "f", Service: "web", Address: "10.0.0.6", Port: 85, Status: api.HealthMaint})
	s.Register(consultest.Instance{ID: "g", Service: "web", Address: "::1", Port: 86})

	src, err := consul.NewSource(c, consul.Options{Wait: time.Second})
	require.NoError(t, err)
	rec, _ := watch(t, src, "web")
	rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return u.Err == nil })
	want := []resolver.Endpoint{
		{Addresses: []string{"10.0.0.1:80"}, Weight: 3, Zone: "z1", Metadata: map[string]string{consul.MetaID: "a", consul.MetaHealth: "passing", consul.MetaTags: "v1,eu", consul.MetaNode: "consultest", consul.MetaNodeDC: "dc1"}},
		{Addresses: []string{"127.0.0.1:81"}, Weight: 1, Metadata: map[string]string{consul.MetaID: "b", consul.MetaHealth: "passing", consul.MetaNode: "consultest", consul.MetaNodeDC: "dc1"}},
		{Addresses: []string{"[::1]:86"}, Weight: 1, Metadata: map[string]string{consul.MetaID: "g", consul.MetaHealth: "passing", consul.MetaNode: "consultest", consul.MetaNodeDC: "dc1"}},
	}
	require.Equal(t, []resolver.Update{{Endpoints: want, Authoritative: true, HoldEmpty: true}}, rec.all())
	q := s.Requests()[0].Query
	require.False(t, q.Has("passing"), "health is filtered by the source: %v", q)

	// With warning: c at its warning weight; d (warning weight 0) stays out.
	src, err = consul.NewSource(c, consul.Options{Wait: time.Second, IncludeWarning: true})
	require.NoError(t, err)
	rec, _ = watch(t, src, "web")
	rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return u.Err == nil })
	u := rec.all()
	require.Equal(t, []string{"10.0.0.1:80", "10.0.0.3:82", "127.0.0.1:81", "[::1]:86"}, addrs(u[0]))
	require.Equal(t, uint32(2), u[0].Endpoints[1].Weight)
	require.Equal(t, "warning", u[0].Endpoints[1].Metadata[consul.MetaHealth])
}

// TestSource_TargetParameters: the target's parameters override Options
// and reach Consul as its query parameters.
func TestSource_TargetParameters(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80, Tags: []string{"v1", "eu"}})
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81, Tags: []string{"v1"}})
	src, err := consul.NewSource(c, consul.Options{Wait: time.Second, Tags: []string{"nope"}})
	require.NoError(t, err)
	rec, _ := watch(t, src, "web?tag=v1,eu&dc=dc1&stale&ns=default")
	rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return u.Err == nil })
	require.Equal(t, []string{"127.0.0.1:80"}, addrs(rec.all()[0]))
	q := s.Requests()[0].Query
	require.Equal(t, []string{"v1", "eu"}, q["tag"])
	require.Equal(t, "dc1", q.Get("dc"))
	require.Equal(t, "default", q.Get("ns"))
	require.True(t, q.Has("stale"))
}

// TestSource_FollowsChangesWithBlockingQueries: each change reaches the
// report function within changeDeadline, and the queries carry the last
// X-Consul-Index and the configured wait.
func TestSource_FollowsChangesWithBlockingQueries(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	src, err := consul.NewSource(c, consul.Options{Wait: 30 * time.Second})
	require.NoError(t, err)
	rec, stop := watch(t, src, "web")
	i := rec.waitFor(t, defaultTestTimeout, 0, "one instance", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	time.Sleep(100 * time.Millisecond) // let the next query block

	start := time.Now()
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81})
	i = rec.waitFor(t, changeDeadline, i+1, "two instances", func(u resolver.Update) bool { return len(u.Endpoints) == 2 })
	t.Logf("registration reported after %v", time.Since(start))
	time.Sleep(300 * time.Millisecond) // past MinInterval: the next query blocks
	start = time.Now()
	s.SetStatus("a", api.HealthCritical)
	rec.waitFor(t, changeDeadline, i+1, "one instance", func(u resolver.Update) bool { return len(u.Endpoints) == 1 })
	t.Logf("failing check reported after %v", time.Since(start))

	reqs := s.Requests()
	require.Zero(t, reqs[0].Index, "the first query does not block")
	for _, r := range reqs[1:] {
		require.Positive(t, r.Index, "later queries block on the last index")
		require.Equal(t, "30000ms", r.Wait)
	}
	start = time.Now()
	stop()
	require.Less(t, time.Since(start), time.Second, "stop cancels the blocked query")
}

// TestSource_ReportsOnlyChanges: a server that answers every query at once
// with the same data (idempotent writes) gets one query per MinInterval,
// and only the first answer, and then a real change, are reported.
func TestSource_ReportsOnlyChanges(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	s.SetNoBlock(true)
	vt := newVirtualTime(10 * time.Second)
	vt.onSleep = func(n int, _ time.Duration) {
		if n == 20 {
			s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81})
		}
	}
	src, err := consul.NewSourceWithClock(c, consul.Options{MinInterval: 100 * time.Millisecond}, vt, constRand(0))
	require.NoError(t, err)
	rec, _ := watch(t, src, "web")
	vt.wait(t)
	u := rec.all()
	require.Len(t, u, 2, "%s", rec)
	require.Equal(t, []string{"127.0.0.1:80"}, addrs(u[0]))
	require.Equal(t, []string{"127.0.0.1:80", "127.0.0.1:81"}, addrs(u[1]))
	// 10s of virtual time at one query per 100ms: the first at 0, the last
	// at 10s.
	require.Len(t, s.Requests(), 101)
}

// TestSource_RateLimitBoundsRequests: against a server that never blocks,
// or that fails at once while the back-off is shorter than MinInterval, the
// request count over a period T is at most T/MinInterval + 1 whatever the
// jitter draws, and the pauses lie in [MinInterval, 1.5*MinInterval).
func TestSource_RateLimitBoundsRequests(t *testing.T) {
	for _, tc := range []struct {
		r    float64
		fail bool
	}{{0, false}, {0.5, false}, {0.999, false}, {0, true}, {0.999, true}} {
		t.Run(fmt.Sprintf("rand=%v,failing=%v", tc.r, tc.fail), func(t *testing.T) {
			r := tc.r
			checkLeaks(t)
			s, c := newFake(t, consultest.Options{})
			s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
			s.SetNoBlock(true)
			if tc.fail {
				s.SetFailure(500, "rpc error")
			}
			const period, minInterval = 60 * time.Second, 250 * time.Millisecond
			vt := newVirtualTime(period)
			opts := consul.Options{MinInterval: minInterval, BackoffMin: time.Millisecond, BackoffMax: 100 * time.Millisecond}
			src, err := consul.NewSourceWithClock(c, opts, vt, constRand(r))
			require.NoError(t, err)
			watch(t, src, "web")
			vt.wait(t)
			n := len(s.Requests())
			gap := minInterval + time.Duration(r*float64(minInterval/2))
			require.Equal(t, int(period/gap)+1, n, "one query per %v over %v", gap, period)
			require.LessOrEqual(t, n, int(period/minInterval)+1)
			for _, p := range vt.Pauses() {
				require.GreaterOrEqual(t, p, minInterval)
				require.Less(t, p, minInterval*3/2)
			}
		})
	}
}
