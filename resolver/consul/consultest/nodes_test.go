package consultest_test

import (
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// TestHealthService_NodeMeta: each entry carries its node's name and meta
// (Options.NodeMeta for the agent's node), and SetNodeMeta is a write that
// wakes a query blocked on the services of that node only, which then sees
// the new Node.Meta.
func TestHealthService_NodeMeta(t *testing.T) {
	s, c := newServer(t, consultest.Options{Node: "n1", NodeMeta: map[string]string{"zone": "a"}})
	s.Register(consultest.Instance{ID: "a", Service: "web", Port: 80})
	s.Register(consultest.Instance{ID: "b", Service: "web", Port: 81, Node: "n2"})
	s.Register(consultest.Instance{ID: "x", Service: "other", Port: 82, Node: "n3"})
	s.SetNodeMeta("n2", map[string]string{"zone": "b", "rack": "r7"})

	entries, meta, err := c.Health().Service("web", "", false, nil)
	require.NoError(t, err)
	require.Len(t, entries, 2)
	require.Equal(t, "n1", entries[0].Node.Node)
	require.Equal(t, map[string]string{"zone": "a"}, entries[0].Node.Meta)
	require.Equal(t, "n2", entries[1].Node.Node)
	require.Equal(t, map[string]string{"zone": "b", "rack": "r7"}, entries[1].Node.Meta)
	require.Equal(t, "n2", entries[1].Checks[0].Node, "the checks name the instance's node")

	// A meta change of a node without "web" instances leaves a query on
	// "web" blocked; a change of n1's meta ends it.
	done := make(chan []*api.ServiceEntry, 1)
	go func() {
		es, _, err := c.Health().Service("web", "", false, &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: testTimeout})
		if err != nil {
			t.Error(err)
		}
		done <- es
	}()
	s.SetNodeMeta("n3", map[string]string{"zone": "c"})
	select {
	case <-done:
		t.Fatal("a node meta change of another service's node ended the blocked query")
	case <-time.After(100 * time.Millisecond):
	}
	s.SetNodeMeta("", map[string]string{"zone": "z"})
	select {
	case es := <-done:
		require.Len(t, es, 2)
		require.Equal(t, map[string]string{"zone": "z"}, es[0].Node.Meta)
	case <-time.After(testTimeout):
		t.Fatal("the blocked query did not return after the node meta change")
	}
}
