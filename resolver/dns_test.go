package resolver

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingResolver counts the lookups made through a real *net.Resolver.
type countingResolver struct {
	res       *net.Resolver
	ipLookups atomic.Int32
	// entered and release, if set: each lookup sends on entered, then
	// waits for release.
	entered, release chan struct{}
}

func (r *countingResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	r.ipLookups.Add(1)
	if r.entered != nil {
		r.entered <- struct{}{}
		<-r.release
	}
	return r.res.LookupIPAddr(ctx, host)
}

func (r *countingResolver) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	return r.res.LookupSRV(ctx, service, proto, name)
}

// watchUpdates starts s watching name and returns the channel of its reports;
// the watch is stopped at the end of the test.
func watchUpdates(t *testing.T, s Source, name string) (chan Update, func()) {
	t.Helper()
	ch := make(chan Update, 100)
	resolveNow, stop, err := s.Watch(context.Background(), name, func(u Update) { ch <- u })
	require.NoError(t, err)
	t.Cleanup(stop)
	return ch, resolveNow
}

func nextUpdate(t *testing.T, ch chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(defaultTestTimeout):
		t.Fatal("timed out waiting for an update")
		return Update{}
	}
}

func noUpdate(t *testing.T, ch chan Update) {
	t.Helper()
	select {
	case u := <-ch:
		t.Fatalf("unexpected update %+v", u)
	default:
	}
}

// A/AAAA mode against a real DNS server: a name answering only loopback
// addresses is one (dual-stack) endpoint; other addresses are one endpoint
// each, at the target's port.
func TestDNS_AddressLookup(t *testing.T) {
	srv := startDNSServer(t)
	srv.setIPs("loop.test", "127.0.0.1", "::1")
	srv.setIPs("many.test", "10.0.0.1", "10.0.0.2", "fd00::3")
	s := &dnsSource{res: srv.resolver(), clk: newFakeClock()}

	ch, _ := watchUpdates(t, s, "loop.test:50051")
	u := nextUpdate(t, ch)
	require.NoError(t, u.Err)
	require.Len(t, u.Endpoints, 1, "%+v", u.Endpoints)
	assert.ElementsMatch(t, []string{"127.0.0.1:50051", "[::1]:50051"}, u.Endpoints[0].Addresses)
	assert.Zero(t, u.Endpoints[0].Weight)

	ch, _ = watchUpdates(t, s, "many.test:80")
	u = nextUpdate(t, ch)
	require.NoError(t, u.Err)
	assert.ElementsMatch(t, []Endpoint{
		{Addresses: []string{"10.0.0.1:80"}}, {Addresses: []string{"10.0.0.2:80"}}, {Addresses: []string{"[fd00::3]:80"}},
	}, u.Endpoints)
}

func TestDNS_LookupErrorIsReported(t *testing.T) {
	srv := startDNSServer(t)
	ch, _ := watchUpdates(t, &dnsSource{res: srv.resolver(), clk: newFakeClock()}, "no-such-host.test:1")
	u := nextUpdate(t, ch)
	require.Error(t, u.Err)
	assert.Contains(t, u.Err.Error(), "dns: lookup no-such-host.test")
	var dnsErr *net.DNSError
	require.ErrorAs(t, u.Err, &dnsErr, "the resolver's error is wrapped")
	assert.True(t, dnsErr.IsNotFound)
}

// The dns source re-resolves every interval ±10% and ResolveNow pulls the
// next lookup forward, but never closer than 5s to the previous one, however
// often the channel asks. Lookups are real (an in-process DNS server); time
// is fake.
func TestDNS_ReResolvesPeriodicallyAndRateLimitsResolveNow(t *testing.T) {
	clk := newFakeClock()
	srv := startDNSServer(t)
	srv.setIPs("localhost", "127.0.0.1")
	res := &countingResolver{res: srv.resolver()}
	s := &dnsSource{res: res, clk: clk, rand: func() float64 { return 0 }} // jitter at its low bound: 27s
	ch, resolveNow := watchUpdates(t, s, "localhost:1?interval=30s")

	waitDeadline := func(want time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
		defer cancel()
		for {
			if ds := clk.activeTimers(); slices.Equal(ds, []time.Duration{want}) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("timer: have %v, want [%v]", clk.activeTimers(), want)
			case <-time.After(time.Millisecond):
			}
		}
	}

	require.NoError(t, nextUpdate(t, ch).Err)
	waitDeadline(27 * time.Second)

	// A storm of ResolveNow right after a lookup: one lookup, 5s later.
	for range 100 {
		resolveNow()
	}
	waitDeadline(5 * time.Second)
	clk.Advance(5*time.Second - time.Millisecond)
	waitDeadline(time.Millisecond)
	noUpdate(t, ch)
	assert.Equal(t, int32(1), res.ipLookups.Load())
	clk.Advance(time.Millisecond)
	require.NoError(t, nextUpdate(t, ch).Err)
	assert.Equal(t, int32(2), res.ipLookups.Load())
	waitDeadline(27 * time.Second)

	// A ResolveNow long after the last lookup resolves at once.
	clk.Advance(10 * time.Second)
	waitDeadline(17 * time.Second)
	resolveNow()
	require.NoError(t, nextUpdate(t, ch).Err)
	assert.Equal(t, int32(3), res.ipLookups.Load())

	// And without ResolveNow, the periodic lookup.
	waitDeadline(27 * time.Second)
	clk.Advance(27 * time.Second)
	require.NoError(t, nextUpdate(t, ch).Err)
	assert.Equal(t, int32(4), res.ipLookups.Load())
}

// A ResolveNow that arrives while a lookup runs is answered by it: the
// next lookup stays at its interval. (The full CI run once saw a
// ResolveNow of a storm still pending when the lookup it asked for ran,
// and a fourth lookup 5s after it.)
func TestDNS_ResolveNowDuringLookupIsAnswered(t *testing.T) {
	clk := newFakeClock()
	srv := startDNSServer(t)
	srv.setIPs("localhost", "127.0.0.1")
	res := &countingResolver{res: srv.resolver(), entered: make(chan struct{}), release: make(chan struct{})}
	s := &dnsSource{res: res, clk: clk, rand: func() float64 { return 0 }} // 27s
	ch, resolveNow := watchUpdates(t, s, "localhost:1?interval=30s")
	<-res.entered // the lookup is running
	resolveNow()
	close(res.release)
	require.NoError(t, nextUpdate(t, ch).Err)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	for !slices.Equal(clk.activeTimers(), []time.Duration{27 * time.Second}) {
		if ctx.Err() != nil {
			t.Fatalf("timer: have %v, want [27s]: the ResolveNow answered by the lookup pulled the next one forward", clk.activeTimers())
		}
		time.Sleep(time.Millisecond)
	}
	// Stays so: nothing pending.
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, []time.Duration{27 * time.Second}, clk.activeTimers())
}

func TestDNS_JitterBounds(t *testing.T) {
	for _, tt := range []struct {
		rand float64
		want time.Duration
	}{{0, 9 * time.Second}, {0.5, 10 * time.Second}, {0.999999, 11 * time.Second}} {
		w := &dnsWatcher{cfg: dnsConfig{interval: 10 * time.Second}, rand: func() float64 { return tt.rand }}
		assert.InDelta(t, float64(tt.want), float64(w.jittered()), float64(time.Millisecond), "rand %v", tt.rand)
	}
}

func TestIPEndpoints(t *testing.T) {
	ip := func(s string) net.IPAddr { return net.IPAddr{IP: net.ParseIP(s)} }
	got := ipEndpoints([]net.IPAddr{ip("10.0.0.1"), ip("::1"), ip("fd00::1"), ip("127.0.0.1")}, "80")
	assert.Equal(t, []Endpoint{
		{Addresses: []string{"10.0.0.1:80"}},
		{Addresses: []string{"[::1]:80", "127.0.0.1:80"}},
		{Addresses: []string{"[fd00::1]:80"}},
	}, got)
	zoned := ipEndpoints([]net.IPAddr{{IP: net.ParseIP("fe80::1"), Zone: "eth0"}}, "80")
	assert.Equal(t, []Endpoint{{Addresses: []string{"[fe80::1%eth0]:80"}}}, zoned)
}

// The SRV-to-endpoint conversion on its own, including inputs a DNS server
// would not send (nil records); dns_srv_test.go runs the whole lookup.
func TestSRVEndpoints(t *testing.T) {
	ip := func(ss ...string) []net.IPAddr {
		var out []net.IPAddr
		for _, s := range ss {
			out = append(out, net.IPAddr{IP: net.ParseIP(s)})
		}
		return out
	}
	addrs := map[string][]net.IPAddr{
		"a.example.": ip("10.0.0.1"),
		"b.example.": ip("10.0.0.2", "fd00::2"),
		"c.example.": ip("10.0.0.3"),
		"d.example.": ip("10.0.0.4", "10.0.0.4"),
	}
	srv := func(target string, port, prio, weight uint16) *net.SRV {
		return &net.SRV{Target: target, Port: port, Priority: prio, Weight: weight}
	}
	tests := []struct {
		name         string
		records      []*net.SRV
		want         []Endpoint
		wantAuthEmpt bool
		wantProblems int
	}{
		{
			name:    "weights carried, dual-stack target is one endpoint",
			records: []*net.SRV{srv("a.example.", 5001, 10, 3), srv("b.example.", 5002, 10, 1)},
			want: []Endpoint{
				{Addresses: []string{"10.0.0.1:5001"}, Weight: 3},
				{Addresses: []string{"10.0.0.2:5002", "[fd00::2]:5002"}, Weight: 1},
			},
		},
		{
			name:    "only the lowest priority is used",
			records: []*net.SRV{srv("c.example.", 5003, 20, 5), srv("a.example.", 5001, 10, 1)},
			want:    []Endpoint{{Addresses: []string{"10.0.0.1:5001"}, Weight: 1}},
		},
		{
			name:    "weight 0 becomes 1",
			records: []*net.SRV{srv("a.example.", 5001, 0, 0), srv("b.example.", 5002, 0, 0)},
			want: []Endpoint{
				{Addresses: []string{"10.0.0.1:5001"}, Weight: 1},
				{Addresses: []string{"10.0.0.2:5002", "[fd00::2]:5002"}, Weight: 1},
			},
		},
		{
			name:    "weights above MaxWeight scaled keeping ratios",
			records: []*net.SRV{srv("a.example.", 5001, 0, 60000), srv("b.example.", 5002, 0, 30000), srv("c.example.", 5003, 0, 1)},
			want: []Endpoint{
				{Addresses: []string{"10.0.0.1:5001"}, Weight: attrs.MaxWeight},
				{Addresses: []string{"10.0.0.2:5002", "[fd00::2]:5002"}, Weight: attrs.MaxWeight / 2},
				{Addresses: []string{"10.0.0.3:5003"}, Weight: 1},
			},
		},
		{
			name:         "unresolved target skipped",
			records:      []*net.SRV{srv("a.example.", 5001, 0, 1), srv("gone.example.", 5009, 0, 1)},
			want:         []Endpoint{{Addresses: []string{"10.0.0.1:5001"}, Weight: 1}},
			wantProblems: 1,
		},
		{
			name:         "port 0 skipped",
			records:      []*net.SRV{srv("a.example.", 0, 0, 1)},
			wantProblems: 1,
		},
		{
			name:         "single '.' target: service decidedly not available",
			records:      []*net.SRV{srv(".", 0, 0, 0)},
			wantAuthEmpt: true,
		},
		{
			name:    "two records for one target are two endpoints",
			records: []*net.SRV{srv("a.example.", 5001, 0, 1), srv("a.example.", 6001, 0, 2)},
			want: []Endpoint{
				{Addresses: []string{"10.0.0.1:5001"}, Weight: 1},
				{Addresses: []string{"10.0.0.1:6001"}, Weight: 2},
			},
		},
		{name: "no records", records: nil},
		{name: "nil records ignored", records: []*net.SRV{nil, srv("a.example.", 5001, 5, 1), nil},
			want: []Endpoint{{Addresses: []string{"10.0.0.1:5001"}, Weight: 1}}},
		{name: "single nil record", records: []*net.SRV{nil}},
		{name: "'.' beside other records is ignored", records: []*net.SRV{srv(".", 0, 0, 0), srv("a.example.", 5001, 1, 1)},
			want: []Endpoint{{Addresses: []string{"10.0.0.1:5001"}, Weight: 1}}},
		{name: "an address repeated in the answer is listed once", records: []*net.SRV{srv("d.example.", 5004, 0, 1)},
			want: []Endpoint{{Addresses: []string{"10.0.0.4:5004"}, Weight: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, authEmpty, problems := srvEndpoints(tt.records, addrs)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantAuthEmpt, authEmpty)
			assert.Len(t, problems, tt.wantProblems, strings.Join(problems, "; "))
		})
	}
}
