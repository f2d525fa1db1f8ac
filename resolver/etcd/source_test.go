package etcd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/fulcrum-lb/fulcrum/resolver"
	"github.com/fulcrum-lb/fulcrum/resolver/etcd"
)

const svc = etcd.DefaultPrefix + "/user-svc/"

func TestNewSource_RejectsBadOptions(t *testing.T) {
	checkLeaks(t)
	cli := newClient(t, "127.0.0.1:1") // never dialed: options fail first
	tests := []struct {
		name    string
		cli     *clientv3.Client
		opts    etcd.Options
		wantErr string
	}{
		{name: "nil client", opts: etcd.Options{}, wantErr: "etcd: client: nil, must be non-nil"},
		{name: "negative timeout", cli: cli, opts: etcd.Options{Timeout: -time.Second}, wantErr: "etcd: timeout: -1s, must be >= 0"},
		{name: "negative probe interval", cli: cli, opts: etcd.Options{ProbeInterval: -time.Second}, wantErr: "etcd: probeInterval: -1s, must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := etcd.NewSource(tt.cli, tt.opts)
			require.EqualError(t, err, tt.wantErr)
		})
	}
}

func TestSource_RejectsBadNames(t *testing.T) {
	checkLeaks(t)
	src, err := etcd.NewSource(newClient(t, "127.0.0.1:1"), etcd.Options{})
	require.NoError(t, err)
	for _, tt := range []struct{ name, wantErr string }{
		{"", `etcd: name: "", must be non-empty without leading, trailing or double slashes`},
		{"/user", `etcd: name: "/user", must be non-empty without leading, trailing or double slashes`},
		{"user/", `etcd: name: "user/", must be non-empty without leading, trailing or double slashes`},
		{"a//b", `etcd: name: "a//b", must be non-empty without leading, trailing or double slashes`},
		{"user?zone=a", `etcd: parameters: "zone=a", must be empty (the etcd source takes none)`},
	} {
		_, _, err := src.Watch(context.Background(), tt.name, func(resolver.Update) { t.Error("report called") })
		require.EqualError(t, err, tt.wantErr, "name %q", tt.name)
	}
}

// TestSource_ListsInitialSet puts a JSON instance, a bare host:port, a
// malformed value, a key of a nested service and a key of a service whose
// name extends ours; the first report must hold exactly the first two, in
// key order, with weight and metadata.
func TestSource_ListsInitialSet(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	put(t, cli, svc+"a", `{"addresses":["127.0.0.1:5001","[::1]:5001"],"weight":2,"metadata":{"zone":"a"}}`)
	put(t, cli, svc+"b", " 127.0.0.1:5002\n")
	put(t, cli, svc+"c", `{"addresses":["127.0.0.1:5003"`)
	put(t, cli, svc+"v2/d", `127.0.0.1:5004`)
	put(t, cli, etcd.DefaultPrefix+"/user-svc2/e", `127.0.0.1:5005`)

	src, err := etcd.NewSource(cli, etcd.Options{})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	rec.waitFor(t, defaultTestTimeout, 0, "a first update", func(resolver.Update) bool { return true })
	want := resolver.Update{
		Endpoints: []resolver.Endpoint{
			{Addresses: []string{"127.0.0.1:5001", "[::1]:5001"}, Weight: 2, Metadata: map[string]string{"zone": "a"}},
			{Addresses: []string{"127.0.0.1:5002"}},
		},
		Authoritative: true,
		HoldEmpty:     true,
	}
	require.Equal(t, want, rec.all()[0])

	// The nested service is a service of its own.
	rec2, _ := watch(t, src, "user-svc/v2")
	rec2.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5004")
}

// TestSource_EmptySetAuthority checks that an empty set is authoritative
// when the prefix really is empty, and not when it is empty only because
// every value was malformed.
func TestSource_EmptySetAuthority(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	src, err := etcd.NewSource(cli, etcd.Options{})
	require.NoError(t, err)

	rec, _ := watch(t, src, "user-svc")
	rec.waitFor(t, defaultTestTimeout, 0, "a first update", func(resolver.Update) bool { return true })
	require.Equal(t, resolver.Update{Endpoints: []resolver.Endpoint{}, Authoritative: true, HoldEmpty: true}, rec.all()[0])

	put(t, cli, svc+"a", `{"addresses":[]}`)
	i := rec.waitFor(t, defaultTestTimeout, 1, "a second update", func(resolver.Update) bool { return true })
	require.Equal(t, resolver.Update{Endpoints: []resolver.Endpoint{}, Authoritative: false, HoldEmpty: true}, rec.all()[i])

	put(t, cli, svc+"b", `127.0.0.1:5002`)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5002")
	require.True(t, rec.all()[i].Authoritative)
}

// TestSource_FollowsChanges adds, changes, breaks and removes instances
// and checks that each change reaches the report function within
// defaultTestTimeout.
func TestSource_FollowsChanges(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	put(t, cli, svc+"a", `127.0.0.1:5001`)
	src, err := etcd.NewSource(cli, etcd.Options{})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	i := rec.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5001")

	put(t, cli, svc+"b", `{"addresses":["127.0.0.1:5002"]}`)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5001", "127.0.0.1:5002")

	put(t, cli, svc+"b", `{"addresses":["127.0.0.1:5002"],"weight":7}`)
	i = rec.waitFor(t, defaultTestTimeout, i+1, "b with weight 7", func(u resolver.Update) bool {
		return len(u.Endpoints) == 2 && u.Endpoints[1].Weight == 7
	})

	// A value that stops parsing takes its instance out of the set.
	put(t, cli, svc+"a", `{"addresses":"127.0.0.1:5001"}`)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5002")

	put(t, cli, svc+"a", `127.0.0.1:5001`)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5001", "127.0.0.1:5002")

	del(t, cli, svc+"a")
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5002")

	del(t, cli, svc+"b")
	i = rec.waitFor(t, defaultTestTimeout, i+1, "an authoritative empty set", func(u resolver.Update) bool {
		return u.Err == nil && len(u.Endpoints) == 0 && u.Authoritative
	})

	// Writes that leave the set as it was are not reported.
	put(t, cli, svc+"x/nested", `127.0.0.1:5009`)
	put(t, cli, etcd.DefaultPrefix+"/other/y", `127.0.0.1:5009`)
	put(t, cli, svc+"c", `127.0.0.1:5003`)
	j := rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5003")
	require.Equal(t, i+1, j, "unexpected updates: %s", describe(rec.all()[i+1:j]))
}

// TestSource_StopEndsReports checks that stop (and cancelling the Watch
// context) ends the watch: nothing is reported afterwards (the recorder
// checks it) and the goroutines are gone (checkLeaks).
func TestSource_StopEndsReports(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	src, err := etcd.NewSource(cli, etcd.Options{})
	require.NoError(t, err)

	rec, stop := watch(t, src, "user-svc")
	rec.waitFor(t, defaultTestTimeout, 0, "a first update", func(resolver.Update) bool { return true })
	stop()
	stop() // idempotent
	put(t, cli, svc+"a", `127.0.0.1:5001`)

	ctx, cancel := context.WithCancel(context.Background())
	rec2 := newRecorder()
	_, stop2, err := src.Watch(ctx, "user-svc", rec2.report)
	require.NoError(t, err)
	rec2.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5001")
	cancel()
	stop2()
	n := len(rec2.all())
	put(t, cli, svc+"b", `127.0.0.1:5002`)
	// Give a (wrong) report a chance to arrive before the final check.
	put(t, cli, svc+"c", `127.0.0.1:5003`)
	require.Len(t, rec2.all(), n)
	require.Len(t, rec.all(), 1)
}

// TestSource_EtcdOutage stops etcd under a running watch and a
// registration, for longer than the registration's TTL: the source must
// report an error (so the resolver keeps its last good set) and nothing
// else. After etcd restarts on the same ports and data dir the watch must
// carry on and report instances added after the restart, and the
// registration must be back under a new lease.
func TestSource_EtcdOutage(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	put(t, cli, svc+"a", `127.0.0.1:5001`)
	const ttl = 2 * time.Second
	reg, err := etcd.Register(context.Background(), cli, "user-svc", resolver.Endpoint{Addresses: []string{"127.0.0.1:5009"}},
		etcd.RegisterOptions{ID: "z", TTL: ttl, Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	defer reg.Close()
	_, lease, _ := getKey(t, cli, reg.Key())
	src, err := etcd.NewSource(cli, etcd.Options{ProbeInterval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	i := rec.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5001", "127.0.0.1:5009")
	// A second watch, to be stopped while etcd is down.
	rec2, stop2 := watch(t, src, "user-svc")
	rec2.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5001", "127.0.0.1:5009")

	lost := logs.count("lost lease")
	te.stop()
	i = rec.waitForErr(t, defaultTestTimeout, i+1)
	require.Contains(t, rec.all()[i].Err.Error(), "etcd: probing \"/fulcrum/services/user-svc/\"")
	stopped := make(chan struct{})
	go func() { stop2(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(defaultTestTimeout):
		t.Fatal("stop did not return while etcd was down")
	}
	// Wait until the client has given the lease up (a TTL without an
	// answer) and two more probes have failed: each is logged, none may be
	// reported.
	failed := logs.count("still failing")
	logs.waitFor(t, "lost lease", lost+1)
	logs.waitFor(t, "still failing", failed+2)
	require.Len(t, rec.all(), i+1, "more than one report for one outage: %s", describe(rec.all()[i:]))

	te.start()
	put(t, cli, svc+"b", `127.0.0.1:5002`)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5009")
	del(t, cli, svc+"a")
	rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5002", "127.0.0.1:5009")
	waitForKey(t, cli, reg.Key(), true, lease)
	for _, u := range rec.all() {
		if u.Err == nil {
			require.NotEmpty(t, u.Endpoints, "an empty set was reported: %s", describe(rec.all()))
		}
	}
}

// TestSource_OutageThatChangedNothing stops and restarts etcd with no
// change in between: the source reports the error once, then re-lists and
// reports the same set once (it must, to end the error; the resolver's
// common layer pushes nothing for it, see TestCommon_SameSetAfterErrorPushesNothing)
// and nothing more: the next report is the next real change.
func TestSource_OutageThatChangedNothing(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	put(t, cli, svc+"a", `127.0.0.1:5001`)
	src, err := etcd.NewSource(cli, etcd.Options{ProbeInterval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	i := rec.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5001")
	require.Zero(t, i)

	te.stop()
	i = rec.waitForErr(t, defaultTestTimeout, 1)
	require.Equal(t, 1, i, "reports: %s", describe(rec.all()))
	te.start()
	i = rec.waitForAddrs(t, defaultTestTimeout, 2, "127.0.0.1:5001")
	require.Equal(t, 2, i, "reports: %s", describe(rec.all()))
	relisted := logs.count("re-listing")
	require.NotZero(t, relisted, "recovery must go through a re-list")

	put(t, cli, svc+"b", `127.0.0.1:5002`)
	j := rec.waitForAddrs(t, defaultTestTimeout, 3, "127.0.0.1:5001", "127.0.0.1:5002")
	require.Equal(t, 3, j, "spurious reports after the recovery: %s", describe(rec.all()[2:j]))
}

// TestSource_InitialListFailsThenRecovers starts a watch while etcd is
// down: it must report an error, then the set once etcd is up.
func TestSource_InitialListFailsThenRecovers(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	cli := newClient(t, te.endpoint())
	put(t, cli, svc+"a", `127.0.0.1:5001`)
	te.stop()

	src, err := etcd.NewSource(cli, etcd.Options{ProbeInterval: 200 * time.Millisecond, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	i := rec.waitForErr(t, defaultTestTimeout, 0)
	require.True(t, strings.HasPrefix(rec.all()[i].Err.Error(), "etcd: listing \"/fulcrum/services/user-svc/\": "), rec.all()[i].Err.Error())

	te.start()
	rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5001")
}

// TestSource_SurvivesCompaction cuts the source's connection to etcd (a
// proxy between them), changes the set and compacts etcd's history past
// the last revision the source saw, then restores the connection. The
// resumed watch is refused as compacted; the source must re-list, report
// the current set and go on watching. The probe is off (a long interval)
// so that only the watch can notice the change.
func TestSource_SurvivesCompaction(t *testing.T) {
	checkLeaks(t)
	te := startEtcd(t)
	admin := newClient(t, te.endpoint())
	px := newProxy(t, te.endpoint())
	cli := newClient(t, px.addr())
	put(t, admin, svc+"a", `127.0.0.1:5001`)
	src, err := etcd.NewSource(cli, etcd.Options{ProbeInterval: time.Hour})
	require.NoError(t, err)
	rec, _ := watch(t, src, "user-svc")
	i := rec.waitForAddrs(t, defaultTestTimeout, 0, "127.0.0.1:5001")
	// The watch exists once a write shows up in it.
	put(t, admin, svc+"b", `127.0.0.1:5002`)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5001", "127.0.0.1:5002")

	px.setBlocked(true)
	waitForState(t, cli, connectivity.TransientFailure)
	put(t, admin, svc+"b", `127.0.0.1:5002`)
	del(t, admin, svc+"a")
	put(t, admin, svc+"c", `127.0.0.1:5003`)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	resp, err := admin.Get(ctx, "any")
	require.NoError(t, err)
	_, err = admin.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	require.NoError(t, err)

	px.setBlocked(false)
	i = rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5002", "127.0.0.1:5003")
	put(t, admin, svc+"d", `127.0.0.1:5004`)
	rec.waitForAddrs(t, defaultTestTimeout, i+1, "127.0.0.1:5002", "127.0.0.1:5003", "127.0.0.1:5004")
}

// waitForState waits until cli's connection to etcd is in state want.
func waitForState(t *testing.T, cli *clientv3.Client, want connectivity.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTestTimeout)
	defer cancel()
	conn := cli.ActiveConnection()
	for s := conn.GetState(); s != want; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("etcd connection still %v, want %v", s, want)
		}
	}
}
