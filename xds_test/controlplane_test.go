package xds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"

	v3discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	v3discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	v3cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	v3resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	v3server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	xdsexample "github.com/fulcrum-lb/fulcrum/examples/xds"
)

// controlPlane is an xDS management server on 127.0.0.1: go-control-plane's
// ADS server over a snapshot cache, as grpc-go's own e2e tests run it,
// serving the resources of examples/xds (so the cluster its README tells
// users to send is the one proven here). It records every ACK and NACK.
type controlPlane struct {
	addr   string
	nodeID string
	cache  v3cache.SnapshotCache
	gs     *grpc.Server
	cancel context.CancelFunc

	mu      sync.Mutex
	version int
	nacks   []nack
	acks    map[string]string // type URL -> last ACKed version
	changed chan struct{}     // closed and replaced on every NACK and ACK
}

// nack is a rejected response, as the client reported it.
type nack struct {
	typeURL, version, message string
}

// startControlPlane starts a management server; it stops when the test ends.
func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp := &controlPlane{
		addr:    lis.Addr().String(),
		nodeID:  "fulcrum-" + t.Name(),
		cancel:  cancel,
		acks:    make(map[string]string),
		changed: make(chan struct{}),
		// ads: answer only once every resource of the snapshot was asked
		// for, so the client gets a consistent set.
		cache: v3cache.NewSnapshotCache(true, v3cache.IDHash{}, quietLogger{}),
	}
	cb := v3server.CallbackFuncs{StreamRequestFunc: cp.onRequest}
	xs := v3server.NewServer(ctx, cp.cache, cb)
	cp.gs = grpc.NewServer()
	v3discoverygrpc.RegisterAggregatedDiscoveryServiceServer(cp.gs, xs)
	go cp.gs.Serve(lis)
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) stop() {
	cp.cancel()
	cp.gs.Stop()
}

// onRequest records ACKs and NACKs. In the state-of-the-world protocol a
// request carrying a response nonce acknowledges that response; with
// error_detail set it rejects it (a NACK).
func (cp *controlPlane) onRequest(_ int64, req *v3discoverypb.DiscoveryRequest) error {
	if req.GetResponseNonce() == "" {
		return nil
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if d := req.GetErrorDetail(); d != nil {
		cp.nacks = append(cp.nacks, nack{typeURL: req.GetTypeUrl(), version: req.GetVersionInfo(), message: d.GetMessage()})
	} else {
		cp.acks[req.GetTypeUrl()] = req.GetVersionInfo()
	}
	close(cp.changed)
	cp.changed = make(chan struct{})
	return nil
}

// waitNACK waits for a NACK of typeURL and returns it.
func (cp *controlPlane) waitNACK(ctx context.Context, typeURL string) (nack, error) {
	for {
		cp.mu.Lock()
		for _, n := range cp.nacks {
			if n.typeURL == typeURL {
				cp.mu.Unlock()
				return n, nil
			}
		}
		ch := cp.changed
		cp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nack{}, fmt.Errorf("no NACK of %s: %w", typeURL, ctx.Err())
		}
	}
}

// bootstrap is the xDS bootstrap config that points grpc-go's xDS client at
// this server (gRFC A27; the same JSON goes in GRPC_XDS_BOOTSTRAP_CONFIG).
func (cp *controlPlane) bootstrap() []byte {
	return fmt.Appendf(nil, `{
		"xds_servers": [{"server_uri": "passthrough:///%s", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q}
	}`, cp.addr, cp.nodeID)
}

// update serves a new snapshot of examples/xds's resources: listener svc ->
// route -> cluster svc (cluster.json, with fulcrumCfg as the Fulcrum config
// in its TypedStruct) -> the endpoints, in one locality. It returns the
// snapshot's version.
func (cp *controlPlane) update(t *testing.T, fulcrumCfg map[string]any, eps []xdsexample.Endpoint) string {
	t.Helper()
	cfg, err := json.Marshal(fulcrumCfg)
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := xdsexample.Cluster(string(cfg))
	if err != nil {
		t.Fatal(err)
	}
	cla, err := xdsexample.Assignment(eps)
	if err != nil {
		t.Fatal(err)
	}
	cp.mu.Lock()
	cp.version++
	version := strconv.Itoa(cp.version)
	cp.mu.Unlock()
	snap, err := v3cache.NewSnapshot(version, map[v3resource.Type][]types.Resource{
		v3resource.ListenerType: {xdsexample.Listener()},
		v3resource.RouteType:    {xdsexample.Route()},
		v3resource.ClusterType:  {cluster},
		v3resource.EndpointType: {cla},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Consistent(); err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), cp.nodeID, snap); err != nil {
		t.Fatal(err)
	}
	return version
}

// waitACK waits until the client has acknowledged version of typeURL.
func (cp *controlPlane) waitACK(ctx context.Context, typeURL, version string) error {
	for {
		cp.mu.Lock()
		got := cp.acks[typeURL]
		ch := cp.changed
		cp.mu.Unlock()
		if got == version {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("no ACK of %s version %s (last ACKed %q): %w", typeURL, version, got, ctx.Err())
		}
	}
}

// quietLogger drops go-control-plane's logs: its debug lines would flood the
// test output, and a log after the test ended would panic.
type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
