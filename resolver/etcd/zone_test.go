package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/resolvertest"

	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

// TestSource_ZonesReachTheChannel: an instance's "zone" field and its
// metadata "zone" both become attrs.Zone of the endpoint the channel gets;
// a value whose two zones differ is skipped (with a warning naming both);
// a change of the zone alone reaches the channel.
func TestSource_ZonesReachTheChannel(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	put(t, cli, svc+"a", `{"addresses":["127.0.0.1:5001"],"zone":"a"}`)
	put(t, cli, svc+"b", `{"addresses":["127.0.0.1:5002"],"metadata":{"zone":"b"}}`)
	put(t, cli, svc+"c", `{"addresses":["127.0.0.1:5003"],"zone":"a","metadata":{"zone":"b"}}`)
	put(t, cli, svc+"d", `127.0.0.1:5004`)
	src, err := etcd.NewSource(cli, etcd.Options{})
	require.NoError(t, err)
	ch := resolvertest.Build(t, src, "user-svc")
	ch.WaitZones(t, defaultTestTimeout, map[string]string{"127.0.0.1:5001": "a", "127.0.0.1:5002": "b", "127.0.0.1:5004": ""})

	put(t, cli, svc+"d", `{"addresses":["127.0.0.1:5004"],"zone":"d"}`)
	ch.WaitZones(t, defaultTestTimeout, map[string]string{"127.0.0.1:5001": "a", "127.0.0.1:5002": "b", "127.0.0.1:5004": "d"})
}

// TestRegister_WritesTheZone: Register puts Endpoint.Zone in the value's
// "zone" field, and rejects an endpoint whose Zone and metadata "zone"
// differ before writing anything.
func TestRegister_WritesTheZone(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	reg, err := etcd.Register(context.Background(), cli, "user-svc",
		resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}, Zone: "a"}, etcd.RegisterOptions{TTL: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { reg.Close() })
	val, _, ok := getKey(t, cli, reg.Key())
	require.True(t, ok)
	require.JSONEq(t, `{"addresses":["127.0.0.1:5001"],"zone":"a"}`, val)

	_, err = etcd.Register(context.Background(), cli, "user-svc",
		resolver.Endpoint{Addresses: []string{"127.0.0.1:5002"}, Zone: "a", Metadata: map[string]string{"zone": "b"}}, etcd.RegisterOptions{})
	require.EqualError(t, err, `etcd: zone: "a", must equal metadata.zone "b" when both are given`)
}
