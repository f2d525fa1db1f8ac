package etcd_test

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

// channel is the resolver.ClientConn of a grpc-go channel reduced to what
// the fulcrum resolver tells it: the endpoints of every state.
type channel struct {
	gresolver.ClientConn // nil; only the methods below are called
	mu                   sync.Mutex
	states               []gresolver.State
}

func (c *channel) UpdateState(s gresolver.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, s)
	return nil
}

func (c *channel) ReportError(error) {}

func (c *channel) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

// waitZones waits until the last state the channel got has endpoints
// whose first addresses and attrs.Zone are want.
func (c *channel) waitZones(t *testing.T, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	var got map[string]string
	for time.Now().Before(deadline) {
		c.mu.Lock()
		if n := len(c.states); n > 0 {
			got = map[string]string{}
			for _, ep := range c.states[n-1].Endpoints {
				got[ep.Addresses[0].Addr] = attrs.Zone(ep)
			}
		}
		c.mu.Unlock()
		if maps.Equal(got, want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the channel got zones %v, want %v", got, want)
}

var sourceSeq atomic.Int32

// buildChannel registers src under a fresh name and builds the fulcrum
// resolver for fulcrum://<that name>/<name>, as grpc.NewClient does.
func buildChannel(t *testing.T, src resolver.Source, name string) *channel {
	t.Helper()
	srcName := fmt.Sprintf("etcd-zone-%d", sourceSeq.Add(1))
	resolver.RegisterSource(srcName, src)
	u, err := url.Parse("fulcrum://" + srcName + "/" + name)
	require.NoError(t, err)
	ch := &channel{}
	r, err := gresolver.Get(resolver.Scheme).Build(gresolver.Target{URL: *u}, ch, gresolver.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return ch
}

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
	ch := buildChannel(t, src, "user-svc")
	ch.waitZones(t, map[string]string{"127.0.0.1:5001": "a", "127.0.0.1:5002": "b", "127.0.0.1:5004": ""})

	put(t, cli, svc+"d", `{"addresses":["127.0.0.1:5004"],"zone":"d"}`)
	ch.waitZones(t, map[string]string{"127.0.0.1:5001": "a", "127.0.0.1:5002": "b", "127.0.0.1:5004": "d"})
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
