package consul_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/consul"
	"github.com/fulcrum-lb/fulcrum/resolver/consul/consultest"
)

// dialTarget is dial with the source registered under its own name and a
// query appended to the target.
func dialTarget(t *testing.T, c *api.Client, query string) (*grpc.ClientConn, string) {
	t.Helper()
	src, err := consul.NewSource(c, consul.Options{})
	require.NoError(t, err)
	name := "consul-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	resolver.RegisterSource(name, src)
	target := "fulcrum://" + name + "/echo" + query
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return cc, target
}

// waitHeld polls fulcrumz until target's resolver shows an empty answer
// held off.
func waitHeld(t *testing.T, target string) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for time.Now().Before(deadline) {
		for _, r := range fulcrumz.Resolvers() {
			if r.Target == target && r.EmptyHeldSince != nil {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fulcrumz never showed an empty answer held off for %s: %+v", target, fulcrumz.Resolvers())
}

// TestEndToEnd_ShortEmptyAnswerLosesNoRPC is the regression test of issue
// 21's empty-answer report: Consul answers [] with a known leader and a
// valid index (an agent restart; the instances come back seconds later)
// for 3s while every backend serves. The source reports that as an
// authoritative empty set; the resolver holds it off for emptyGrace (45s by
// default), so RPCs through weighted_least_request keep going to the
// backends: none fails. Before the hold, 601 of 801 RPCs failed.
func TestEndToEnd_ShortEmptyAnswerLosesNoRPC(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	bs := startBackends(t, 2)
	s.Register(instance(t, "b0", bs[0]))
	s.Register(instance(t, "b1", bs[1]))
	cc, target := dialTarget(t, c, "")
	loop := startRPCLoop(cc)
	defer loop.stop()
	waitForHits(t, bs[0], 5, defaultTestTimeout)
	waitForHits(t, bs[1], 5, defaultTestTimeout)

	s.SetEmptyAnswers(true)
	s.Touch("echo") // a new index: the blocked query answers [] now
	waitHeld(t, target)
	time.Sleep(3 * time.Second)
	s.SetEmptyAnswers(false)
	s.Touch("echo") // the instances are back
	for _, b := range bs {
		waitForHits(t, b, 5, defaultTestTimeout)
	}
	loop.stop()
	loop.requireNoFailure(t)
	t.Logf("%d RPCs across 3s of empty answers, all succeeded", loop.sent.Load())
}

// TestEndToEnd_PersistentEmptyAnswerEmptiesChannel: an empty answer that
// outlasts emptyGrace does empty the channel (RPCs fail with UNAVAILABLE),
// and the instances' return fills it again.
func TestEndToEnd_PersistentEmptyAnswerEmptiesChannel(t *testing.T) {
	checkLeaks(t)
	s, c := newFake(t, consultest.Options{})
	bs := startBackends(t, 1)
	s.Register(instance(t, "b0", bs[0]))
	cc, target := dialTarget(t, c, "?emptyGrace=300ms")
	client := testgrpc.NewTestServiceClient(cc)
	waitForCall(t, client, "the backend to serve", func(err error) bool { return err == nil })

	s.SetEmptyAnswers(true)
	s.Touch("echo")
	waitHeld(t, target)
	waitForCall(t, client, "RPCs to fail with UNAVAILABLE once the grace is over", func(err error) bool {
		return status.Code(err) == codes.Unavailable
	})
	s.SetEmptyAnswers(false)
	s.Touch("echo")
	waitForCall(t, client, "the backend to serve again", func(err error) bool { return err == nil })
}

// waitForCall sends fail-fast RPCs until one's error satisfies ok.
func waitForCall(t *testing.T, client testgrpc.TestServiceClient, what string, ok func(error) bool) {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = client.EmptyCall(ctx, &testpb.Empty{})
		cancel()
		if ok(err) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: last RPC error %v", what, err)
}
