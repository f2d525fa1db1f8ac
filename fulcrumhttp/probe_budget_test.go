package fulcrumhttp

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// probeFarm is one HTTP server listening on n ports of 127.0.0.1, counting
// the probes (GET /healthz) it receives on all of them.
type probeFarm struct {
	addrs  []string
	probes atomic.Int64
}

func newProbeFarm(t *testing.T, n int) *probeFarm {
	t.Helper()
	f := &probeFarm{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			f.probes.Add(1)
		}
	})}
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(lis)
		f.addrs = append(f.addrs, lis.Addr().String())
	}
	t.Cleanup(func() { srv.Close() })
	return f
}

// probesOver counts the probes the farm receives over window, once every
// endpoint has been probed at least once (the first probes go out at once,
// outside any budget).
func (f *probeFarm) probesOver(t *testing.T, window time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.probes.Load() < int64(len(f.addrs)) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d endpoints probed after 5s", f.probes.Load(), len(f.addrs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := f.probes.Load()
	time.Sleep(window)
	return f.probes.Load() - before
}

func budgetTransport(t *testing.T, addrs []string, maxPerSecond float64) *Transport {
	t.Helper()
	tr, err := NewTransport(map[string]string{"svc": "fulcrum://static/" + strings.Join(addrs, ",")},
		WithConfig(fmt.Sprintf(`{"healthProbe":{"path":"/healthz","interval":"100ms","timeout":"100ms","jitter":0,"maxProbesPerSecond":%g}}`, maxPerSecond)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// TestProbeBudget_HostSendsAtMostItsBudget: a host of 40 endpoints probed
// every 100ms would send 400 probes a second; with maxProbesPerSecond 40
// each endpoint is probed every 40/40 = 1s, so in a 1.5s window each sends
// at most 2 probes (80 in all; a prober never probes more often than its
// interval, so this bound holds however loaded the machine is). Without
// the budget (0) the same host sends several times that.
func TestProbeBudget_HostSendsAtMostItsBudget(t *testing.T) {
	const n, window = 40, 1500 * time.Millisecond
	f := newProbeFarm(t, n)
	budgetTransport(t, f.addrs, 40)
	got := f.probesOver(t, window)
	t.Logf("%d endpoints, interval 100ms, maxProbesPerSecond 40: %d probes in %v (at most %d)", n, got, window, 2*n)
	if got > 2*n {
		t.Errorf("host sent %d probes in %v, want at most %d (maxProbesPerSecond 40 over %d endpoints: one per endpoint a second)", got, window, 2*n, n)
	}

	u := newProbeFarm(t, n)
	budgetTransport(t, u.addrs, 0)
	got = u.probesOver(t, window)
	t.Logf("the same without a budget: %d probes in %v", got, window)
	if got <= 2*n {
		t.Errorf("without a budget the host sent %d probes in %v, want more than %d (every 100ms)", got, window, 2*n)
	}
}

// TestProbeBudget_RescalesOnMembershipChange: the budgeted interval is
// re-applied to running probers when the host's size changes by half or
// more (40 -> 10 endpoints: 1s -> 250ms), not on smaller changes (40 -> 30:
// 750ms is within half of 1s).
func TestProbeBudget_RescalesOnMembershipChange(t *testing.T) {
	const n = 40
	f := newProbeFarm(t, n)
	tr := budgetTransport(t, f.addrs, 40)
	g := tr.groups["svc"]
	f.probesOver(t, 0) // resolved and probing
	iv := func() time.Duration { g.mu.Lock(); defer g.mu.Unlock(); return g.probeIv }
	if got := iv(); got != time.Second {
		t.Fatalf("probe interval of %d endpoints at 40/s: %v, want 1s", n, got)
	}
	specs := func(addrs []string) []endpointset.Spec {
		var s []endpointset.Spec
		for _, a := range addrs {
			s = append(s, endpointset.Spec{Key: a, Addrs: []string{a}, Weight: 1})
		}
		return s
	}
	g.onUpdate(specs(f.addrs[:30]), false)
	if got := iv(); got != time.Second {
		t.Errorf("40 -> 30 endpoints: interval %v, want the 1s applied (750ms is within half of it)", got)
	}
	g.onUpdate(specs(f.addrs[:10]), false)
	if got := iv(); got != 250*time.Millisecond {
		t.Fatalf("40 -> 10 endpoints: interval %v, want 250ms", got)
	}
	// The 10 running probers now probe every 250ms (their waits restarted
	// at the update): about 60 probes in 1.5s, at most 10 x (1 + 6) = 70;
	// had they kept 1s, at most 10 x (1 + 1.5) = 25.
	const window = 1500 * time.Millisecond
	got := f.probesOver(t, window)
	t.Logf("shrunk to 10 endpoints: %d probes in %v (expected about 60)", got, window)
	if got > 70 || got <= 25 {
		t.Errorf("after shrinking to 10 endpoints the host sent %d probes in %v, want about 60 (at most 70; at most 25 would mean the 1s interval stayed)", got, window)
	}
}
