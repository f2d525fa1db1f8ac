package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/experimental/balancer/weight"
	"google.golang.org/grpc/resolver"
)

// testSource is a Source driven by the test: send pushes whatever the test
// wants, as a real discovery system would.
type testSource struct {
	mu         sync.Mutex
	report     func(Update)
	names      []string
	resolveNow atomic.Int32
	stopped    atomic.Int32
}

func (s *testSource) Watch(_ context.Context, name string, report func(Update)) (func(), func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report = report
	s.names = append(s.names, name)
	return func() { s.resolveNow.Add(1) }, func() { s.stopped.Add(1) }, nil
}

func (s *testSource) send(u Update) {
	s.mu.Lock()
	report := s.report
	s.mu.Unlock()
	report(u)
}

var testSourceSeq atomic.Int32

// registerTestSource registers a fresh testSource under a unique name.
func registerTestSource() (*testSource, string) {
	s := &testSource{}
	name := fmt.Sprintf("test-%d", testSourceSeq.Add(1))
	RegisterSource(name, s)
	return s, name
}

func mustTarget(t *testing.T, target string) resolver.Target {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	return resolver.Target{URL: *u}
}

// build builds a resolver for target with clk, closed at the end of the test.
func build(t *testing.T, target string, clk clock.Clock) *recorder {
	t.Helper()
	rec := newRecorder()
	r, err := (&builder{clk: clk, handled: rec.markHandled}).Build(mustTarget(t, target), rec, resolver.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return rec
}

func eps(addrs ...string) []Endpoint {
	var out []Endpoint
	for _, a := range addrs {
		out = append(out, Endpoint{Addresses: []string{a}})
	}
	return out
}

// addrsOf returns the first address of each endpoint of s, in order.
func addrsOf(s resolver.State) []string {
	var out []string
	for _, ep := range s.Endpoints {
		out = append(out, ep.Addresses[0].Addr)
	}
	return out
}

func TestCommon_PushesOnlyChanges(t *testing.T) {
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc", clock.Real())

	src.send(Update{Endpoints: eps("10.0.0.2:1", "10.0.0.1:1")})
	evs := rec.waitEvents(t, 1)
	assert.Equal(t, []string{"10.0.0.1:1", "10.0.0.2:1"}, addrsOf(evs[0].state), "sorted")
	assert.Equal(t, []string{"10.0.0.1:1", "10.0.0.2:1"}, func() (s []string) {
		for _, a := range evs[0].state.Addresses {
			s = append(s, a.Addr)
		}
		return s
	}(), "deprecated Addresses filled too")

	// The same set in another order is handled and pushes nothing.
	rec.waitHandled(t, 1)
	src.send(Update{Endpoints: eps("10.0.0.1:1", "10.0.0.2:1")})
	rec.waitHandled(t, 2)
	require.Len(t, rec.all(), 1, "a reordered set was pushed")
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	evs = rec.waitEvents(t, 2)
	assert.Equal(t, []string{"10.0.0.1:1"}, addrsOf(evs[1].state))

	// A weight change is a change.
	src.send(Update{Endpoints: []Endpoint{{Addresses: []string{"10.0.0.1:1"}, Weight: 4}}})
	evs = rec.waitEvents(t, 3)
	w, _ := attrs.Weight(evs[2].state.Endpoints[0])
	assert.Equal(t, uint32(4), w)
	assert.Equal(t, []string{"svc"}, src.names)
}

func TestCommon_WeightsAndMetadataInAttributes(t *testing.T) {
	src, name := registerTestSource()
	rec := build(t, "fulcrum://"+name+"/svc", clock.Real())
	src.send(Update{Endpoints: []Endpoint{
		{Addresses: []string{"10.0.0.1:1", "[fd00::1]:1"}, Weight: 3, Metadata: map[string]string{"zone": "a"}},
		{Addresses: []string{"10.0.0.2:1"}},                              // weight 0: default
		{Addresses: []string{"10.0.0.3:1"}, Weight: attrs.MaxWeight + 1}, // clamped
	}})
	evs := rec.waitEvents(t, 1)
	got := evs[0].state.Endpoints
	require.Len(t, got, 3)
	require.Len(t, got[0].Addresses, 2, "a dual-stack endpoint keeps both addresses, in the source's order")
	assert.Equal(t, "[fd00::1]:1", got[0].Addresses[1].Addr)
	want := []struct {
		weight uint32
		md     map[string]string
	}{{3, map[string]string{"zone": "a"}}, {attrs.DefaultWeight, nil}, {attrs.MaxWeight, nil}}
	for i, w := range want {
		gotW, ok := attrs.Weight(got[i])
		assert.True(t, ok, "endpoint %d has a weight attribute", i)
		assert.Equal(t, w.weight, gotW, "endpoint %d weight", i)
		// grpc-go's standard attribute carries the same weight, for grpc-go's
		// own weight-aware policies (ring_hash, pick_first).
		assert.Equal(t, w.weight, weight.FromEndpoint(got[i]).Weight, "endpoint %d grpc-go weight", i)
		assert.Equal(t, w.md, attrs.Metadata(got[i]), "endpoint %d metadata", i)
	}
}

func TestStatic_WeightsInAttributes(t *testing.T) {
	rec := build(t, "fulcrum://static/127.0.0.1:5001=3,127.0.0.1:5002,[::1]:5003=2", clock.Real())
	evs := rec.waitEvents(t, 1)
	got := map[string]uint32{}
	for _, ep := range evs[0].state.Endpoints {
		w, _ := attrs.Weight(ep)
		got[ep.Addresses[0].Addr] = w
	}
	assert.Equal(t, map[string]uint32{"127.0.0.1:5001": 3, "127.0.0.1:5002": 1, "[::1]:5003": 2}, got)
}

func TestCommon_ForwardsResolveNowAndStopsSourceOnClose(t *testing.T) {
	src, name := registerTestSource()
	rec := newRecorder()
	r, err := (&builder{clk: clock.Real()}).Build(mustTarget(t, "fulcrum://"+name+"/svc?lkgTTL=1m&zone=a"), rec, resolver.BuildOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"svc?zone=a"}, src.names, "lkgTTL is consumed, other parameters reach the source")
	r.ResolveNow(resolver.ResolveNowOptions{})
	assert.Equal(t, int32(1), src.resolveNow.Load())
	r.Close()
	r.Close()
	assert.Equal(t, int32(1), src.stopped.Load())
	r.ResolveNow(resolver.ResolveNowOptions{})
	assert.Equal(t, int32(1), src.resolveNow.Load(), "no ResolveNow after Close")
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	src.send(Update{Err: errors.New("late")}) // must not block on the first one
	assert.Empty(t, rec.all(), "nothing reaches the channel after Close")
}

// Close stops an armed lkgTTL timer.
func TestCommon_CloseStopsTTLTimer(t *testing.T) {
	clk := newFakeClock()
	src, name := registerTestSource()
	rec := newRecorder()
	r, err := (&builder{clk: clk, handled: rec.markHandled}).Build(mustTarget(t, "fulcrum://"+name+"/svc?lkgTTL=1m"), rec, resolver.BuildOptions{})
	require.NoError(t, err)
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	src.send(Update{Err: errors.New("down")})
	clk.waitTimers(t, 1)
	r.Close()
	assert.Empty(t, clk.activeTimers())
}

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name         string
		in           []Endpoint
		want         []string // endpoint strings, sorted
		wantProblems int
	}{
		{name: "sorted by address", in: eps("b:1", "a:1"), want: []string{"a:1", "b:1"}},
		{name: "empty metadata dropped", in: []Endpoint{{Addresses: []string{"a:1"}, Metadata: map[string]string{}}}, want: []string{"a:1"}},
		{name: "duplicate address in a later endpoint dropped", in: []Endpoint{
			{Addresses: []string{"a:1", "b:1"}}, {Addresses: []string{"b:1", "c:1"}},
		}, want: []string{"a:1,b:1", "c:1"}, wantProblems: 1},
		{name: "endpoint left without address skipped", in: eps("a:1", "a:1"), want: []string{"a:1"}, wantProblems: 2},
		{name: "duplicate within an endpoint collapsed silently", in: []Endpoint{
			{Addresses: []string{"a:1", "a:1"}},
		}, want: []string{"a:1"}},
		{name: "empty address dropped", in: []Endpoint{{Addresses: []string{"", "a:1"}}}, want: []string{"a:1"}, wantProblems: 1},
		{name: "weight clamped", in: []Endpoint{{Addresses: []string{"a:1"}, Weight: 1 << 31}}, want: []string{fmt.Sprintf("a:1=%d", attrs.MaxWeight)}, wantProblems: 1},
		{name: "weight 10000 kept", in: []Endpoint{{Addresses: []string{"a:1"}, Weight: 10000}}, want: []string{"a:1=10000"}},
		{name: "weight 0 is the default", in: []Endpoint{{Addresses: []string{"a:1"}, Weight: 0}}, want: []string{"a:1"}},
		{name: "metadata", in: []Endpoint{{Addresses: []string{"a:1", "b:1"}, Weight: 2, Metadata: map[string]string{"k": "v"}}}, want: []string{"a:1,b:1=2map[k:v]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems := canonicalize(tt.in)
			var s []string
			for _, e := range got {
				s = append(s, e.String())
			}
			assert.Equal(t, tt.want, s)
			assert.Len(t, problems, tt.wantProblems, "%q", problems)
			for _, e := range got {
				assert.True(t, e.md == nil || len(e.md) > 0, "empty metadata must be nil, not %#v", e.md)
			}
		})
	}
}

func TestBuild_MalformedTargets(t *testing.T) {
	tests := []struct {
		target  string
		wantErr string // substring after the common prefix
	}{
		{"fulcrum://nosuch/x", `source: "nosuch", must be one of the registered sources: `},
		{"fulcrum:///x", `source: "", must be one of the registered sources: `},
		{"fulcrum:static/x", `form: "fulcrum:static/x", must be fulcrum://<source>/<name>`},
		{"fulcrum://u@static/127.0.0.1:1", `userinfo: "u", must be empty`},
		{"fulcrum://static/127.0.0.1:1#f", `fragment: "f", must be empty`},
		{"fulcrum://static/", `name: "", must be non-empty`},
		{"fulcrum://static/a%3Fb:1", `name: "a?b:1", must not contain`},
		{"fulcrum://static/127.0.0.1:1?lkgTTL=soon", `lkgTTL: "soon", must be a duration in [1ms, 24h0m0s]`},
		{"fulcrum://static/127.0.0.1:1?emptyGrace=25h", `emptyGrace: "25h", must be a duration in [0s, 24h0m0s]`},
		{"fulcrum://static/127.0.0.1:1?emptyGrace=-1s", `emptyGrace: "-1s", must be a duration in [0s, 24h0m0s]`},
		{"fulcrum://static/127.0.0.1:1?lkgTTL=1m&lkgTTL=2m", `query parameter lkgTTL: given 2 times, must be given at most once`},
		{"fulcrum://static/127.0.0.1:1?a=%zz", `query: "a=%zz"`},
		{"fulcrum://static/127.0.0.1:1?interval=1s", `query parameter interval: not supported by source static, must be one of: emptyGrace, lkgTTL`},
		{"fulcrum://static/127.0.0.1", `static entry 1 "127.0.0.1": address "127.0.0.1": missing port in address`},
		{"fulcrum://static/127.0.0.1:", `static entry 1 "127.0.0.1:": address "127.0.0.1:": port "", must be a number in [1, 65535]`},
		{"fulcrum://static/:80", `static entry 1 ":80": address ":80": host "", must be`},
		{"fulcrum://static/127.0.0.1:0", `port "0", must be a number in [1, 65535]`},
		{"fulcrum://static/127.0.0.1:65536", `port "65536", must be a number in [1, 65535]`},
		{"fulcrum://static/::1:80", `static entry 1 "::1:80": address "::1:80": too many colons in address`},
		{"fulcrum://static/127.0.0.1:1,,127.0.0.1:2", `static entry 2 ""`},
		{"fulcrum://static/127.0.0.1:1=0", `static entry 1 "127.0.0.1:1=0": weight: "0", must be an integer in [1, 10000]`},
		{"fulcrum://static/127.0.0.1:1=10001", `weight: "10001", must be an integer in [1, 10000]`},
		{"fulcrum://static/127.0.0.1:1=", `weight: "", must be an integer`},
		{"fulcrum://static/127.0.0.1:1=-1", `weight: "-1", must be an integer`},
		{"fulcrum://static/127.0.0.1:1=1.5", `weight: "1.5", must be an integer`},
		{"fulcrum://static/127.0.0.1:1,127.0.0.1:1", `static entry 2 "127.0.0.1:1": address 127.0.0.1:1, must not repeat entry 1`},
		{"fulcrum://dns/localhost", `dns address "localhost": missing port in address`},
		{"fulcrum://dns/localhost:80?interval=100ms", `interval: "100ms", must be a duration in [1s, 24h0m0s]`},
		{"fulcrum://dns/localhost:80?interval=ever", `interval: "ever", must be a duration`},
		{"fulcrum://dns/localhost:80?ttl=1s", `query parameter ttl: not supported by source dns, must be one of: emptyGrace, lkgTTL, interval, srv`},
		{"fulcrum://dns/_grpc._tcp.example.com?srv=maybe", `srv: "maybe", must be true or false`},
		{"fulcrum://dns/example.com:80?srv=true", `srv name: "example.com:80", must be a DNS name without a port`},
		{"fulcrum://file/x.json?interval=1ms", `interval: "1ms", must be a duration in [10ms, 1h0m0s]`},
		{"fulcrum://file/x.json?watch=1", `query parameter watch: not supported by source file, must be one of: emptyGrace, lkgTTL, interval`},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := newRecorder()
			r, err := (&builder{clk: clock.Real()}).Build(mustTarget(t, tt.target), rec, resolver.BuildOptions{})
			if err == nil {
				r.Close()
				t.Fatalf("Build(%q) succeeded, want error containing %q", tt.target, tt.wantErr)
			}
			prefix := fmt.Sprintf("fulcrum resolver: target %q: ", tt.target)
			assert.True(t, strings.HasPrefix(err.Error(), prefix), "error %q must start with %q", err, prefix)
			assert.Contains(t, err.Error(), tt.wantErr)
			if strings.Contains(tt.wantErr, "registered sources") {
				for _, s := range []string{"dns", "file", "static"} {
					assert.Contains(t, err.Error(), s)
				}
			}
			assert.Empty(t, rec.all())
		})
	}
}

func TestBuild_SourceNameIsCaseInsensitive(t *testing.T) {
	rec := build(t, "fulcrum://STATIC/127.0.0.1:1", clock.Real())
	evs := rec.waitEvents(t, 1)
	assert.Equal(t, []string{"127.0.0.1:1"}, addrsOf(evs[0].state))
}

func TestRegisterSource_RejectsInvalid(t *testing.T) {
	RegisterSource("", &testSource{})
	RegisterSource("has space", &testSource{})
	RegisterSource("nilsource", nil)
	for _, n := range []string{"", "has space", "nilsource"} {
		s, _ := lookupSource(n)
		assert.Nil(t, s, "source %q must not be registered", n)
	}
}

func TestWarnIfPassthrough(t *testing.T) {
	assert.True(t, WarnIfPassthrough(mustTarget(t, "passthrough:///10.0.0.1:1")))
	assert.False(t, WarnIfPassthrough(mustTarget(t, "dns:///localhost:1")))
	assert.False(t, WarnIfPassthrough(mustTarget(t, "fulcrum://static/10.0.0.1:1,10.0.0.2:1")))
}
