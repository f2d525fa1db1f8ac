package resolver

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// srvSource returns a dns source whose lookups go to a fresh in-process DNS
// server, and that server. The fake clock keeps the periodic re-resolution
// from firing: each test sees exactly the first lookup.
func srvSource(t *testing.T) (*dnsSource, *dnsServer) {
	t.Helper()
	srv := startDNSServer(t)
	return &dnsSource{res: srv.resolver(), clk: newFakeClock(), rand: func() float64 { return 0.5 }}, srv
}

func srvRecord(target string, port, prio, weight uint16) *net.SRV {
	return &net.SRV{Target: target, Port: port, Priority: prio, Weight: weight}
}

// weightsByAddrs maps each endpoint's addresses (sorted, comma-joined) to its
// weight: net.Resolver.LookupSRV shuffles records of one priority by weight,
// so the order of the endpoints is not part of what is checked.
func weightsByAddrs(eps []Endpoint) map[string]uint32 {
	m := make(map[string]uint32, len(eps))
	for _, ep := range eps {
		m[strings.Join(slices.Sorted(slices.Values(ep.Addresses)), ",")] = ep.Weight
	}
	return m
}

// srvLookup runs the first lookup of an SRV watch of name.
func srvLookup(t *testing.T, s *dnsSource, name string) Update {
	t.Helper()
	ch, _ := watchUpdates(t, s, name+"?srv=true")
	return nextUpdate(t, ch)
}

// Only the lowest priority present is used (RFC 2782); a dual-stack target
// is one endpoint holding both addresses at the record's port; two records
// naming one target are two endpoints but one address lookup.
func TestDNS_SRVLowestPriorityOnly(t *testing.T) {
	s, srv := srvSource(t)
	srv.setSRV("_grpc._tcp.svc.test",
		srvRecord("a.svc.test", 5001, 10, 3),
		srvRecord("b.svc.test", 5002, 10, 1),
		srvRecord("a.svc.test", 6001, 10, 2),
		srvRecord("backup.svc.test", 5003, 20, 100),
	)
	srv.setIPs("a.svc.test", "10.0.0.1")
	srv.setIPs("b.svc.test", "10.0.0.2", "fd00::2")
	srv.setIPs("backup.svc.test", "10.0.0.3")

	u := srvLookup(t, s, "_grpc._tcp.svc.test")
	require.NoError(t, u.Err)
	assert.False(t, u.Authoritative)
	assert.Equal(t, map[string]uint32{
		"10.0.0.1:5001":                3,
		"10.0.0.2:5002,[fd00::2]:5002": 1,
		"10.0.0.1:6001":                2,
	}, weightsByAddrs(u.Endpoints))
	assert.Equal(t, 1, srv.askedFor("TypeA", "a.svc.test"), "one address lookup per target")
	assert.Zero(t, srv.askedFor("TypeA", "backup.svc.test"), "a backup priority is not even resolved")
}

// RFC 2782 weights go up to 65535; above attrs.MaxWeight (10000) they are
// scaled down keeping the ratios, and weight 0 becomes 1.
func TestDNS_SRVWeights(t *testing.T) {
	for _, tt := range []struct {
		name    string
		weights [3]uint16
		want    [3]uint32 // of a, b, c at 10.0.0.1:5001, .2:5002, .3:5003
	}{
		{"above 10000 scaled", [3]uint16{60000, 30000, 1}, [3]uint32{10000, 5000, 1}},
		{"exactly 10000 kept", [3]uint16{10000, 5000, 1}, [3]uint32{10000, 5000, 1}},
		{"10001 scaled", [3]uint16{10001, 5000, 2}, [3]uint32{10000, 4999, 1}},
		{"0 becomes 1", [3]uint16{0, 7, 0}, [3]uint32{1, 7, 1}},
		{"all 0", [3]uint16{0, 0, 0}, [3]uint32{1, 1, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := srvSource(t)
			var recs []*net.SRV
			for i, host := range []string{"a.svc.test", "b.svc.test", "c.svc.test"} {
				recs = append(recs, srvRecord(host, uint16(5001+i), 0, tt.weights[i]))
				srv.setIPs(host, "10.0.0."+string(rune('1'+i)))
			}
			srv.setSRV("_grpc._tcp.svc.test", recs...)
			u := srvLookup(t, s, "_grpc._tcp.svc.test")
			require.NoError(t, u.Err)
			assert.Equal(t, map[string]uint32{
				"10.0.0.1:5001": tt.want[0], "10.0.0.2:5002": tt.want[1], "10.0.0.3:5003": tt.want[2],
			}, weightsByAddrs(u.Endpoints))
		})
	}
}

// A single record with target "." says the service is decidedly not
// available (RFC 2782): an authoritative empty set, no address lookup.
func TestDNS_SRVDotTargetIsAuthoritativeEmpty(t *testing.T) {
	s, srv := srvSource(t)
	srv.setSRV("_grpc._tcp.svc.test", srvRecord(".", 0, 0, 0))
	u := srvLookup(t, s, "_grpc._tcp.svc.test")
	require.NoError(t, u.Err)
	assert.True(t, u.Authoritative)
	assert.Empty(t, u.Endpoints)
}

// A target that does not resolve is skipped; when none resolves, the lookup
// is an error (so the last good set is kept), not an empty set.
func TestDNS_SRVUnresolvableTarget(t *testing.T) {
	s, srv := srvSource(t)
	srv.setSRV("_grpc._tcp.svc.test", srvRecord("a.svc.test", 5001, 0, 1), srvRecord("gone.svc.test", 5002, 0, 1))
	srv.setSRV("_grpc._tcp.none.test", srvRecord("gone.svc.test", 5002, 0, 1), srvRecord("gone2.svc.test", 5002, 0, 1))
	srv.setSRV("_grpc._tcp.port0.test", srvRecord("a.svc.test", 0, 0, 1))
	srv.setSRV("_grpc._tcp.one.test", srvRecord("gone.svc.test", 5002, 0, 1))
	srv.setIPs("a.svc.test", "10.0.0.1")

	u := srvLookup(t, s, "_grpc._tcp.svc.test")
	require.NoError(t, u.Err)
	assert.Equal(t, []Endpoint{{Addresses: []string{"10.0.0.1:5001"}, Weight: 1}}, u.Endpoints)

	u = srvLookup(t, s, "_grpc._tcp.none.test")
	require.Error(t, u.Err)
	assert.Contains(t, u.Err.Error(), "dns: srv _grpc._tcp.none.test: no target resolved: ")
	assert.Contains(t, u.Err.Error(), "gone2.svc.test", "every failed target is named")

	u = srvLookup(t, s, "_grpc._tcp.one.test")
	assert.ErrorContains(t, u.Err, "no target resolved", "one failed target is enough")

	// Port 0 is skipped but resolving worked: an empty, non-authoritative set.
	u = srvLookup(t, s, "_grpc._tcp.port0.test")
	require.NoError(t, u.Err)
	assert.Empty(t, u.Endpoints)
	assert.False(t, u.Authoritative)
}

func TestDNS_SRVNameNotFound(t *testing.T) {
	s, _ := srvSource(t)
	u := srvLookup(t, s, "_grpc._tcp.nosuch.test")
	require.Error(t, u.Err)
	assert.Contains(t, u.Err.Error(), "dns: lookup srv _grpc._tcp.nosuch.test: ")
}

// Through the whole resolver: SRV weights reach the channel as attributes.
func TestDNS_SRVThroughResolver(t *testing.T) {
	s, srv := srvSource(t)
	srv.setSRV("_grpc._tcp.svc.test", srvRecord("a.svc.test", 5001, 0, 30000), srvRecord("b.svc.test", 5002, 0, 15000))
	srv.setIPs("a.svc.test", "10.0.0.1")
	srv.setIPs("b.svc.test", "10.0.0.2")
	name := "dnssrv-test"
	RegisterSource(name, s)
	rec := build(t, "fulcrum://"+name+"/_grpc._tcp.svc.test?srv", clock.Real())
	evs := rec.waitEvents(t, 1)
	require.NoError(t, evs[0].err)
	got := map[string]uint32{}
	for _, ep := range evs[0].state.Endpoints {
		w, _ := attrs.Weight(ep)
		got[ep.Addresses[0].Addr] = w
	}
	assert.Equal(t, map[string]uint32{"10.0.0.1:5001": 10000, "10.0.0.2:5002": 5000}, got)
}
