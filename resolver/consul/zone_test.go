package consul_test

import (
	"context"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/resolvertest"

	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// TestSource_ZoneFromServiceThenNodeMeta: the zone is the service meta key
// first, then the node's; ZoneMeta (or ?zoneMeta) names another key, and a
// service meta "zone" is then not carried (metadata "zone" is the zone
// attribute, which only the chosen key fills).
func TestSource_ZoneFromServiceThenNodeMeta(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{Node: "n1", NodeMeta: map[string]string{"zone": "node-a", "az": "node-az1"}})
	s.Register(consultest.Instance{ID: "a", Service: "web", Address: "10.0.0.1", Port: 80, Meta: map[string]string{"zone": "svc-b", "rack": "r1"}})
	s.Register(consultest.Instance{ID: "b", Service: "web", Address: "10.0.0.2", Port: 80})
	s.Register(consultest.Instance{ID: "c", Service: "web", Address: "10.0.0.3", Port: 80, Node: "n2"}) // node without meta
	s.Register(consultest.Instance{ID: "d", Service: "web", Address: "10.0.0.4", Port: 80, Meta: map[string]string{"az": "svc-az2"}})

	zones := func(u resolver.Update) map[string]string {
		m := map[string]string{}
		for _, e := range u.Endpoints {
			m[e.Addresses[0]] = e.Zone
			_, inMD := e.Metadata[attrs.ZoneKey]
			require.False(t, inMD, "metadata %v carries %q beside Zone", e.Metadata, attrs.ZoneKey)
		}
		return m
	}
	for _, tt := range []struct {
		name string
		opts consul.Options
		want map[string]string
	}{
		{"default key zone", consul.Options{}, map[string]string{"10.0.0.1:80": "svc-b", "10.0.0.2:80": "node-a", "10.0.0.3:80": "", "10.0.0.4:80": "node-a"}},
		{"key az", consul.Options{ZoneMeta: "az"}, map[string]string{"10.0.0.1:80": "node-az1", "10.0.0.2:80": "node-az1", "10.0.0.3:80": "", "10.0.0.4:80": "svc-az2"}},
		{"key from the target", consul.Options{ZoneMeta: "nope"}, nil}, // ?zoneMeta=az below
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := consul.NewSource(c, tt.opts)
			require.NoError(t, err)
			name, want := "web", tt.want
			if want == nil {
				name, want = "web?zoneMeta=az", map[string]string{"10.0.0.1:80": "node-az1", "10.0.0.2:80": "node-az1", "10.0.0.3:80": "", "10.0.0.4:80": "svc-az2"}
			}
			rec, _ := watch(t, src, name)
			i := rec.waitFor(t, defaultTestTimeout, 0, "a set", func(u resolver.Update) bool { return u.Err == nil })
			require.Equal(t, want, zones(rec.all()[i]))
			require.Equal(t, "r1", rec.all()[i].Endpoints[0].Metadata["rack"], "other service meta kept")
		})
	}
}

// TestSource_ZonesReachTheChannel: the zone reaches attrs.Zone of the
// endpoints the channel gets, and a node meta change alone (an agent
// restarted with another node_meta) reaches it through the blocking query.
func TestSource_ZonesReachTheChannel(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{NodeMeta: map[string]string{"zone": "a"}})
	s.Register(consultest.Instance{ID: "a", Service: "web", Address: "10.0.0.1", Port: 80})
	s.Register(consultest.Instance{ID: "b", Service: "web", Address: "10.0.0.2", Port: 80, Meta: map[string]string{"zone": "b"}})
	src, err := consul.NewSource(c, consul.Options{Wait: 30 * time.Second})
	require.NoError(t, err)
	ch := resolvertest.Build(t, src, "web")
	ch.WaitZones(t, defaultTestTimeout, map[string]string{"10.0.0.1:80": "a", "10.0.0.2:80": "b"})

	s.SetNodeMeta("", map[string]string{"zone": "c"})
	ch.WaitZones(t, defaultTestTimeout, map[string]string{"10.0.0.1:80": "c", "10.0.0.2:80": "b"})
}

// TestRegister_WritesTheZone: Register puts Endpoint.Zone (or metadata
// "zone") in the service meta under RegisterOptions.ZoneMeta, where a
// source with the same ZoneMeta reads it.
func TestRegister_WritesTheZone(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	for _, tt := range []struct {
		name     string
		ep       resolver.Endpoint
		zoneMeta string
		wantMeta map[string]string
	}{
		{"zone field", resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}, Zone: "a"}, "", map[string]string{"zone": "a"}},
		{"metadata zone", resolver.Endpoint{Addresses: []string{"127.0.0.1:5002"}, Metadata: map[string]string{"zone": "b", "k": "v"}}, "", map[string]string{"zone": "b", "k": "v"}},
		{"another key", resolver.Endpoint{Addresses: []string{"127.0.0.1:5003"}, Zone: "c", Metadata: map[string]string{"zone": "c"}}, "az", map[string]string{"az": "c"}},
		{"no zone", resolver.Endpoint{Addresses: []string{"127.0.0.1:5004"}}, "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := consul.Register(context.Background(), c, "echo", tt.ep, consul.RegisterOptions{ZoneMeta: tt.zoneMeta})
			require.NoError(t, err)
			t.Cleanup(func() { reg.Close() })
			var got map[string]string
			for _, in := range s.Instances("echo") {
				if in.ID == reg.ID() {
					got = in.Meta
				}
			}
			require.Equal(t, tt.wantMeta, got)
		})
	}
}
