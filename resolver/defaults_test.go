package resolver

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/resolver"
)

// TestDocumentedBounds pins every bound the README documents for the
// resolver, with the values written out here (not read back from the code):
// each row is a target that must build, or fail naming the bound.
func TestDocumentedBounds(t *testing.T) {
	file := "fulcrum://file/" + t.TempDir() + "/eps.json"
	tests := []struct {
		target  string
		wantErr string // "" : Build must succeed
	}{
		// lkgTTL: a Go duration in [1ms, 24h].
		{"fulcrum://static/127.0.0.1:1?lkgTTL=1ms", ""},
		{"fulcrum://static/127.0.0.1:1?lkgTTL=999us", `lkgTTL: "999us", must be a duration in [1ms, 24h0m0s]`},
		{"fulcrum://static/127.0.0.1:1?lkgTTL=24h", ""},
		{"fulcrum://static/127.0.0.1:1?lkgTTL=24h0m0.001s", `lkgTTL: "24h0m0.001s", must be a duration in [1ms, 24h0m0s]`},
		// dns interval: [1s, 24h].
		{"fulcrum://dns/127.0.0.1:1?interval=1s", ""},
		{"fulcrum://dns/127.0.0.1:1?interval=999ms", `interval: "999ms", must be a duration in [1s, 24h0m0s]`},
		{"fulcrum://dns/127.0.0.1:1?interval=24h", ""},
		{"fulcrum://dns/127.0.0.1:1?interval=24h0m1s", `interval: "24h0m1s", must be a duration in [1s, 24h0m0s]`},
		// file interval: [10ms, 1h].
		{file + "?interval=10ms", ""},
		{file + "?interval=9ms", `interval: "9ms", must be a duration in [10ms, 1h0m0s]`},
		{file + "?interval=1h", ""},
		{file + "?interval=1h0m0.001s", `interval: "1h0m0.001s", must be a duration in [10ms, 1h0m0s]`},
		// static weights: [1, 10000].
		{"fulcrum://static/127.0.0.1:1=1", ""},
		{"fulcrum://static/127.0.0.1:1=0", `weight: "0", must be an integer in [1, 10000]`},
		{"fulcrum://static/127.0.0.1:1=10000", ""},
		{"fulcrum://static/127.0.0.1:1=10001", `weight: "10001", must be an integer in [1, 10000]`},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.target, "/", "_"), func(t *testing.T) {
			r, err := (&builder{clk: newFakeClock()}).Build(mustTarget(t, tt.target), newRecorder(), resolver.BuildOptions{})
			if tt.wantErr == "" {
				require.NoError(t, err)
				r.Close()
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestDocumentedDefaults pins the documented defaults and fixed values, each
// observed through behaviour where a test can see it.
func TestDocumentedDefaults(t *testing.T) {
	t.Run("lkgTTL default: for ever", func(t *testing.T) {
		tc, err := parseTarget(mustTarget(t, "fulcrum://static/127.0.0.1:1"))
		require.NoError(t, err)
		assert.Zero(t, tc.lkgTTL)
	})
	t.Run("dns interval default 30s with ±10% jitter", func(t *testing.T) {
		cfg, err := parseDNSName("h:1")
		require.NoError(t, err)
		assert.Equal(t, 30*time.Second, cfg.interval)
		for r, want := range map[float64]time.Duration{0: 27 * time.Second, 0.5: 30 * time.Second} {
			w := &dnsWatcher{cfg: cfg, rand: func() float64 { return r }}
			assert.Equal(t, want, w.jittered(), "rand %v", r)
		}
		w := &dnsWatcher{cfg: cfg, rand: func() float64 { return 1 - 1e-12 }}
		assert.InDelta(t, float64(33*time.Second), float64(w.jittered()), float64(time.Microsecond), "upper bound")
	})
	t.Run("dns ResolveNow min gap 5s", func(t *testing.T) {
		// A ResolveNow right after a lookup arms the next one 5s after it.
		clk := newFakeClock()
		res := &deadlineResolver{}
		s := &dnsSource{res: res, clk: clk, rand: func() float64 { return 0.5 }}
		ch, resolveNow := watchUpdates(t, s, "h.test:1?interval=1m")
		nextUpdate(t, ch)
		assert.Equal(t, []time.Duration{time.Minute}, clk.waitTimers(t, 1))
		resolveNow()
		clk.waitCreated(t, 2)
		assert.Equal(t, []time.Duration{5 * time.Second}, clk.activeTimers())

		// With an interval under 5s the gap is the interval: 2s, not the
		// 2.2s the jitter chose.
		clk = newFakeClock()
		s = &dnsSource{res: res, clk: clk, rand: func() float64 { return 1 - 1e-12 }}
		ch, resolveNow = watchUpdates(t, s, "h.test:1?interval=2s")
		nextUpdate(t, ch)
		clk.waitCreated(t, 1)
		resolveNow()
		clk.waitCreated(t, 2)
		assert.Equal(t, []time.Duration{2 * time.Second}, clk.activeTimers())
	})
	t.Run("dns lookup timeout 10s", func(t *testing.T) {
		res := &deadlineResolver{}
		ch, _ := watchUpdates(t, &dnsSource{res: res, clk: newFakeClock()}, "h.test:1")
		nextUpdate(t, ch)
		// The deadline is taken on the real clock when the lookup starts;
		// the 1s margin is for a slow machine between that and the call.
		left := res.left
		assert.True(t, left > 9*time.Second && left <= 10*time.Second, "lookup deadline %v away, want 10s", left)
	})
	t.Run("file interval default 1s", func(t *testing.T) {
		clk := newFakeClock()
		ch, _ := watchUpdates(t, &fileSource{clk: clk}, t.TempDir()+"/none.json")
		nextUpdate(t, ch)
		assert.Equal(t, []time.Duration{time.Second}, clk.waitTimers(t, 1))
	})
	t.Run("file size limit 16 MiB", func(t *testing.T) {
		assert.Equal(t, 16*1024*1024, fileMaxSize) // behaviour: TestFileWatcher_SizeLimit
	})
	t.Run("weights: default 1, max 10000, 0 means default, above max clamped", func(t *testing.T) {
		assert.Equal(t, uint32(1), attrs.DefaultWeight)
		assert.Equal(t, uint32(10000), attrs.MaxWeight)
		got, _ := canonicalize([]Endpoint{{Addresses: []string{"a:1"}}, {Addresses: []string{"b:1"}, Weight: 10001}})
		assert.Equal(t, []uint32{1, 10000}, []uint32{got[0].weight, got[1].weight})
	})
}

// deadlineResolver answers every address lookup with 10.0.0.1 and records
// how far away the lookup's context deadline was.
type deadlineResolver struct {
	left time.Duration
}

func (r *deadlineResolver) LookupIPAddr(ctx context.Context, _ string) ([]net.IPAddr, error) {
	if d, ok := ctx.Deadline(); ok {
		r.left = time.Until(d)
	}
	return []net.IPAddr{{IP: net.IPv4(10, 0, 0, 1)}}, nil
}

func (r *deadlineResolver) LookupSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", nil, nil
}
