package resolver_test

import (
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/attrs"
)

// captureName is a balancer that only records the endpoints grpc-go hands
// it, so that a test sees what a policy sees.
const captureName = "fulcrum_resolver_zone_capture_test"

func init() { balancer.Register(captureBuilder{}) }

type captureBuilder struct{}

func (captureBuilder) Name() string { return captureName }

func (captureBuilder) Build(balancer.ClientConn, balancer.BuildOptions) balancer.Balancer {
	return &captureBalancer{}
}

// captured receives the endpoints of every state the capture balancer gets.
// It is global (a balancer is built by grpc-go, not by the test), so the
// tests that use it do not run in parallel.
var captured = make(chan []resolver.Endpoint, 16)

type captureBalancer struct{}

func (*captureBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	select { // never block grpc-go's serializer (and so Close)
	case captured <- s.ResolverState.Endpoints:
	default:
	}
	return nil
}
func (*captureBalancer) ResolverError(error)                                        {}
func (*captureBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}
func (*captureBalancer) Close()                                                     {}
func (*captureBalancer) ExitIdle()                                                  {}

// dialCapture dials target through grpc.NewClient (grpc-go's own target
// parsing) with the capture balancer, closed when the test ends.
func dialCapture(t *testing.T, target string) {
	t.Helper()
	for len(captured) > 0 {
		<-captured
	}
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+captureName+`":{}}]}`))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	cc.Connect()
}

// waitZones waits until the policy got endpoints whose first addresses and
// attrs.Zone are want.
func waitZones(t *testing.T, want map[string]string) {
	t.Helper()
	deadline := time.After(defaultTestTimeout)
	var got map[string]string
	for {
		select {
		case eps := <-captured:
			got = map[string]string{}
			for _, ep := range eps {
				got[ep.Addresses[0].Addr] = attrs.Zone(ep)
			}
			if maps.Equal(got, want) {
				return
			}
		case <-deadline:
			t.Fatalf("the policy saw zones %v, want %v", got, want)
		}
	}
}

// The static zone syntax survives grpc-go's url.Parse of the whole target,
// with IPv6 brackets, weights and query options, and reaches the policy as
// attrs.Zone.
func TestStatic_ZonesReachThePolicy(t *testing.T) {
	dialCapture(t, "fulcrum://static/10.0.0.1:80;zone=a,[fd00::1]:80=3;zone=us-east-1b,10.0.0.3:80=2?lkgTTL=1m")
	waitZones(t, map[string]string{"10.0.0.1:80": "a", "[fd00::1]:80": "us-east-1b", "10.0.0.3:80": ""})
}

// Percent-encoded, as a URL builder writes it, the syntax means the same.
func TestStatic_PercentEncodedZone(t *testing.T) {
	dialCapture(t, (&url.URL{Scheme: "fulcrum", Host: "static", Path: "/10.0.0.1:80;zone=a"}).String())
	waitZones(t, map[string]string{"10.0.0.1:80": "a"})
	dialCapture(t, "fulcrum://static/10.0.0.1:80%3Bzone%3Db")
	waitZones(t, map[string]string{"10.0.0.1:80": "b"})
}

// A file's "zone" field and metadata "zone" both reach the policy, and an
// edit of a zone alone is seen.
func TestFile_ZonesReachThePolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eps.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[
		{"addresses":["10.0.0.1:80"],"zone":"a"},
		{"addresses":["10.0.0.2:80"],"metadata":{"zone":"b"}},
		{"addresses":["10.0.0.3:80"]}]}`), 0o644))
	dialCapture(t, "fulcrum://file/"+path+"?interval=10ms")
	waitZones(t, map[string]string{"10.0.0.1:80": "a", "10.0.0.2:80": "b", "10.0.0.3:80": ""})

	require.NoError(t, os.WriteFile(path+".tmp", []byte(`{"endpoints":[
		{"addresses":["10.0.0.1:80"],"zone":"c"},
		{"addresses":["10.0.0.2:80"],"metadata":{"zone":"b"}},
		{"addresses":["10.0.0.3:80"]}]}`), 0o644))
	require.NoError(t, os.Rename(path+".tmp", path))
	waitZones(t, map[string]string{"10.0.0.1:80": "c", "10.0.0.2:80": "b", "10.0.0.3:80": ""})
}
