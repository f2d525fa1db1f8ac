package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

func TestRegister_RejectsBadArguments(t *testing.T) {
	checkLeaks(t)
	cli := newClient(t, "127.0.0.1:1") // never dialed: arguments fail first
	ep := resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}}
	tests := []struct {
		name    string
		cli     *clientv3.Client
		svc     string
		ep      resolver.Endpoint
		opts    etcd.RegisterOptions
		wantErr string
	}{
		{name: "nil client", svc: "user-svc", ep: ep, wantErr: "etcd: client: nil, must be non-nil"},
		{name: "bad name", cli: cli, svc: "/user-svc", ep: ep, wantErr: `etcd: name: "/user-svc", must be non-empty without leading, trailing or double slashes`},
		{name: "no address", cli: cli, svc: "user-svc", wantErr: "etcd: addresses: [], must be non-empty"},
		{name: "empty address", cli: cli, svc: "user-svc", ep: resolver.Endpoint{Addresses: []string{""}}, wantErr: `etcd: addresses: [""], must not contain an empty address`},
		{name: "slash in id", cli: cli, svc: "user-svc", ep: ep, opts: etcd.RegisterOptions{ID: "a/b"}, wantErr: `etcd: id: "a/b", must not contain "/"`},
		{name: "negative ttl", cli: cli, svc: "user-svc", ep: ep, opts: etcd.RegisterOptions{TTL: -time.Second}, wantErr: "etcd: ttl: -1s, must be >= 0"},
		{name: "negative timeout", cli: cli, svc: "user-svc", ep: ep, opts: etcd.RegisterOptions{Timeout: -time.Second}, wantErr: "etcd: timeout: -1s, must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := etcd.Register(context.Background(), tt.cli, tt.svc, tt.ep, tt.opts)
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestRegister_FailsWhenEtcdIsDown(t *testing.T) {
	checkLeaks(t)
	cli := newClient(t, freeAddr(t))
	ep := resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}}
	_, err := etcd.Register(context.Background(), cli, "user-svc", ep, etcd.RegisterOptions{Timeout: 200 * time.Millisecond})
	require.ErrorContains(t, err, `etcd: granting a lease for "/fulcrum/services/user-svc/127.0.0.1:5001": `)
}

// getKey returns the value and lease of key, or ok=false if it is absent.
func getKey(t *testing.T, cli *clientv3.Client, key string) (val string, lease clientv3.LeaseID, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return "", 0, false
	}
	return string(resp.Kvs[0].Value), clientv3.LeaseID(resp.Kvs[0].Lease), true
}

// waitForKey polls until key's presence (and, if present, its lease
// differing from notLease) is as wanted, and returns its lease.
func waitForKey(t *testing.T, cli *clientv3.Client, key string, present bool, notLease clientv3.LeaseID) clientv3.LeaseID {
	t.Helper()
	deadline := time.Now().Add(defaultTestTimeout)
	for {
		_, lease, ok := getKey(t, cli, key)
		if ok == present && (!ok || lease != notLease) {
			return lease
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %q: present=%v lease=%x after %v; want present=%v, lease other than %x", key, ok, lease, defaultTestTimeout, present, notLease)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRegister_PutsKeyAndCloseRemovesIt registers an instance, checks the
// key, its JSON value and that a Source sees it, then checks that Close
// deletes the key at once (not after the TTL) and the Source drops it.
func TestRegister_PutsKeyAndCloseRemovesIt(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	src, err := etcd.NewSource(cli, etcd.Options{})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	i := rec.waitFor(t, defaultTestTimeout, 0, "a first update", func(resolver.Update) bool { return true })

	ep := resolver.Endpoint{Addresses: []string{"127.0.0.1:5001", "[::1]:5001"}, Weight: 3, Metadata: map[string]string{"zone": "a"}}
	reg, err := etcd.Register(context.Background(), cli, "user-svc", ep, etcd.RegisterOptions{TTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, svc+"127.0.0.1:5001", reg.Key())
	val, lease, ok := getKey(t, cli, reg.Key())
	require.True(t, ok)
	require.JSONEq(t, `{"addresses":["127.0.0.1:5001","[::1]:5001"],"weight":3,"metadata":{"zone":"a"}}`, val)
	require.NotZero(t, lease)
	i = rec.waitFor(t, defaultTestTimeout, i+1, "the registered endpoint", func(u resolver.Update) bool {
		return len(u.Endpoints) == 1 && u.Endpoints[0].Weight == 3
	})
	require.Equal(t, []resolver.Endpoint{ep}, rec.all()[i].Endpoints)

	require.NoError(t, reg.Close())
	_, _, ok = getKey(t, cli, reg.Key())
	require.False(t, ok, "key still present after Close")
	rec.waitFor(t, defaultTestTimeout, i+1, "an empty set", func(u resolver.Update) bool { return u.Err == nil && len(u.Endpoints) == 0 })
	require.NoError(t, reg.Close(), "second Close")
}

// TestRegister_CancelRemovesKey checks that cancelling the context given to
// Register removes the key like Close does.
func TestRegister_CancelRemovesKey(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := etcd.Register(ctx, cli, "user-svc", resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}}, etcd.RegisterOptions{ID: "one", TTL: time.Minute})
	require.NoError(t, err)
	require.Equal(t, svc+"one", reg.Key())
	val, _, ok := getKey(t, cli, reg.Key())
	require.True(t, ok)
	require.JSONEq(t, `{"addresses":["127.0.0.1:5001"]}`, val)
	cancel()
	waitForKey(t, cli, reg.Key(), false, 0)
	require.NoError(t, reg.Close())
}

// TestRegister_RenewsLostLease revokes the registration's lease behind its
// back, as etcd does when a lease expires: the key must come back under a
// new lease, and the new lease must be kept alive past its TTL.
func TestRegister_RenewsLostLease(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	admin := newClient(t, te.endpoint())
	reg, err := etcd.Register(context.Background(), cli, "user-svc", resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}}, etcd.RegisterOptions{TTL: 2 * time.Second})
	require.NoError(t, err)
	defer reg.Close()
	_, lease, ok := getKey(t, cli, reg.Key())
	require.True(t, ok)

	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	_, err = admin.Revoke(ctx, lease)
	require.NoError(t, err)
	newLease := waitForKey(t, admin, reg.Key(), true, lease)

	ttl, err := admin.TimeToLive(ctx, newLease)
	require.NoError(t, err)
	require.Equal(t, int64(2), ttl.GrantedTTL)
	// Kept alive: still there after more than one TTL. etcd expires
	// leases on its own wall clock, which a test cannot advance, so this
	// wait is the behaviour under test, not a synchronisation.
	time.Sleep(3 * time.Second)
	_, l, ok := getKey(t, admin, reg.Key())
	require.True(t, ok, "key expired: lease not kept alive")
	require.Equal(t, newLease, l)

	require.NoError(t, reg.Close())
	_, _, ok = getKey(t, admin, reg.Key())
	require.False(t, ok)
}

// TestRegister_ClientClosedFirst closes the etcd client under a live
// registration: the goroutine must end, and Close must say that the key
// was left to expire.
func TestRegister_ClientClosedFirst(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	reg, err := etcd.Register(context.Background(), cli, "user-svc", resolver.Endpoint{Addresses: []string{"127.0.0.1:5001"}}, etcd.RegisterOptions{})
	require.NoError(t, err)
	require.NoError(t, cli.Close())
	require.ErrorContains(t, reg.Close(), `etcd: client closed before the registration; "/fulcrum/services/user-svc/127.0.0.1:5001" is deleted when lease`)
}
