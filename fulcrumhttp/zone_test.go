package fulcrumhttp_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestZones_HTTP is the gRPC zone test through the RoundTripper: six real
// HTTP servers, three in the client's zone "a" (static target
// ";zone=" entries). A healthy zone a takes every request; with two of its
// three servers failing their probes, 1 - 1.4/3 (53 %) spill to zone b and
// none fails; after recovery every request is local again.
func TestZones_HTTP(t *testing.T) {
	bs := newBackends(t, 6)
	var parts []string
	for i, b := range bs {
		parts = append(parts, b.addr+";zone="+string(rune('a'+i/3)))
	}
	tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + strings.Join(parts, ",")},
		`{"localZone":"a","latencyAware":false,"slowStart":{"window":"0s"},`+fastProbe+`}`)
	client := &http.Client{Transport: tr}
	states := func(want map[int]string) func() bool {
		return func() bool {
			for i, b := range bs {
				st, ok := endpointStats(tr, b.addr)
				w := "usable"
				if s, in := want[i]; in {
					w = s
				}
				if !ok || st.State != w {
					return false
				}
			}
			return true
		}
	}
	send := func(n int) (local, remote int64, perBackend []int64) {
		t.Helper()
		for _, b := range bs {
			b.hits.Store(0)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n / 4 {
					if code, _, err := do(t, client, "GET", "http://svc/", nil, ""); err != nil || code != 200 {
						t.Errorf("GET: %d, %v", code, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for i, b := range bs {
			h := b.hits.Load()
			perBackend = append(perBackend, h)
			if i < 3 {
				local += h
			} else {
				remote += h
			}
		}
		return local, remote, perBackend
	}
	mustGet(t, client, "http://svc/") // starts the host's engine
	waitFor(t, "six usable endpoints", states(nil))
	if l, r, _ := send(400); l != 400 || r != 0 {
		t.Fatalf("healthy zone a: %d local, %d remote; want all 400 local", l, r)
	}

	bs[0].health.Store(503)
	bs[1].health.Store(503)
	waitFor(t, "two unhealthy local endpoints", states(map[int]string{0: "unhealthy", 1: "unhealthy"}))
	const n = 1000
	l, r, per := send(n)
	if remote := float64(r) / n; per[0] != 0 || per[1] != 0 || l+r != n || remote < 0.46 || remote > 0.75 {
		t.Fatalf("two of three local down: hits %v (%d local, %d remote); want none on the two, 46-75 %% remote", per, l, r)
	}

	bs[0].health.Store(0)
	bs[1].health.Store(0)
	waitFor(t, "recovery", states(nil))
	if l, r, _ := send(400); l != 400 || r != 0 {
		t.Fatalf("after recovery: %d local, %d remote; want all 400 local", l, r)
	}
}
