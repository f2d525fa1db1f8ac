// Package resolvertest builds the fulcrum:// resolver over a discovery
// Source as grpc.NewClient would, with a channel reduced to what the
// resolver tells it, for the tests of the sources (etcd, Consul).
package resolvertest

import (
	"fmt"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gresolver "google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/resolver"
)

// Channel is the resolver.ClientConn of a grpc-go channel reduced to what
// the fulcrum resolver tells it: the endpoints of every state.
type Channel struct {
	gresolver.ClientConn // nil; only the methods below are called
	mu                   sync.Mutex
	states               []gresolver.State
}

// UpdateState implements resolver.ClientConn.
func (c *Channel) UpdateState(s gresolver.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, s)
	return nil
}

// ReportError implements resolver.ClientConn.
func (c *Channel) ReportError(error) {}

// ParseServiceConfig implements resolver.ClientConn.
func (c *Channel) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

// WaitZones waits up to timeout until the last state the channel got has
// endpoints whose first addresses and attrs.Zone are want.
func (c *Channel) WaitZones(t *testing.T, timeout time.Duration, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
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

// Build registers src under a fresh name and builds the fulcrum resolver
// for fulcrum://<that name>/<name>, closed at the end of the test.
func Build(t *testing.T, src resolver.Source, name string) *Channel {
	t.Helper()
	srcName := fmt.Sprintf("resolvertest-%d", sourceSeq.Add(1))
	resolver.RegisterSource(srcName, src)
	u, err := url.Parse("fulcrum://" + srcName + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	ch := &Channel{}
	r, err := gresolver.Get(resolver.Scheme).Build(gresolver.Target{URL: *u}, ch, gresolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return ch
}
