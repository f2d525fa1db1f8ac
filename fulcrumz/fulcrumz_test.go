package fulcrumz_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// register adds a balancer over a real engine with two endpoints: a is
// connected and probed healthy, b is still connecting. It returns the
// target it registered.
func register(t *testing.T) string {
	t.Helper()
	bc := breaker.DefaultConfig()
	set := endpointset.New(endpointset.DefaultConfig(), endpointset.Options{Probing: true, Warmup: true, Breaker: &bc})
	added, _ := set.Update([]endpointset.Spec{
		{Key: "10.0.0.1:80", Addrs: []string{"10.0.0.1:80"}, Weight: 3},
		{Key: "10.0.0.2:80", Addrs: []string{"10.0.0.2:80"}, Weight: 1},
	})
	a := added[0] // Update returns the new records in the order of the specs
	set.NewConnection(a)
	set.SetConn(a, endpointset.ConnReady)
	set.SetHealth(a, true, "SERVING")
	set.ObserveProbe(a, endpointset.ProbeResult{Outcome: "healthy", Reason: "SERVING", At: time.Now(), Duration: time.Millisecond})
	set.Decide()
	target := "test:///" + t.Name()
	unregister := fulcrumz.Register("test", target, func() (endpointset.View, any, bool) {
		return set.View(0), map[string]int{"choiceCount": 2}, true
	})
	t.Cleanup(unregister)
	return target
}

func find(chs []fulcrumz.Channel, target string) (fulcrumz.Channel, bool) {
	for _, c := range chs {
		if c.Target == target {
			return c, true
		}
	}
	return fulcrumz.Channel{}, false
}

// TestHandler_JSON: the default format is JSON and carries the engine's
// decision per endpoint.
func TestHandler_JSON(t *testing.T) {
	target := register(t)
	rec := httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/fulcrum", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var chs []fulcrumz.Channel
	if err := json.Unmarshal(rec.Body.Bytes(), &chs); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	ch, ok := find(chs, target)
	if !ok {
		t.Fatalf("no channel %s in %s", target, rec.Body)
	}
	var cfg bytes.Buffer
	json.Compact(&cfg, ch.Config)
	if ch.Transport != "test" || cfg.String() != `{"choiceCount":2}` || ch.Counts.Total != 2 || ch.Counts.Usable != 1 || ch.Counts.Connecting != 1 {
		t.Errorf("channel %+v: want transport test, the config, 2 endpoints, 1 usable, 1 connecting", ch)
	}
	if len(ch.Endpoints) != 2 {
		t.Fatalf("%d endpoints, want 2", len(ch.Endpoints))
	}
	a, b := ch.Endpoints[0], ch.Endpoints[1]
	if a.State != "usable" || a.Weight != 3 || a.EffectiveWeight != 3 || !a.Candidate || a.Breaker == nil || a.Breaker.State != "closed" ||
		a.LastProbe == nil || a.LastProbe.Result != "healthy" || a.Connectivity != "ready" {
		t.Errorf("endpoint a %+v: want usable, weight 3, candidate, breaker closed, last probe healthy, ready", a)
	}
	if b.State != "connecting" || b.Candidate || b.LastProbe != nil {
		t.Errorf("endpoint b %+v: want connecting, not a candidate, no probe", b)
	}
}

// TestHandler_Text: ?format=text and Accept: text/plain give the table.
func TestHandler_Text(t *testing.T) {
	target := register(t)
	for name, req := range map[string]*http.Request{
		"query":  httptest.NewRequest("GET", "/?format=text", nil),
		"accept": httptest.NewRequest("GET", "/", nil),
	} {
		if name == "accept" {
			req.Header.Set("Accept", "text/plain")
		}
		rec := httptest.NewRecorder()
		fulcrumz.Handler().ServeHTTP(rec, req)
		body := rec.Body.String()
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("%s: Content-Type %q, want text/plain", name, rec.Header().Get("Content-Type"))
		}
		for _, want := range []string{"test " + target, "ADDRESS", "10.0.0.1:80", "usable", "healthy at", "10.0.0.2:80", "connecting"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: text lacks %q:\n%s", name, want, body)
			}
		}
	}
}

// TestHandler_BadRequests: unknown formats and methods other than GET and
// HEAD are refused with a message naming the value.
func TestHandler_BadRequests(t *testing.T) {
	for _, tc := range []struct {
		method, url, want string
		code              int
	}{
		{"GET", "/?format=xml", `format: "xml", must be "json" or "text"`, http.StatusBadRequest},
		{"POST", "/", "method: POST, must be GET or HEAD", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.url, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
}

// TestRegister_Unregister: a registered balancer is in Snapshot until it
// unregisters; one whose view is not ready is left out.
func TestRegister_Unregister(t *testing.T) {
	unregister := fulcrumz.Register("test", "test:///gone", func() (endpointset.View, any, bool) {
		return endpointset.View{}, nil, true
	})
	notReady := fulcrumz.Register("test", "test:///not-ready", func() (endpointset.View, any, bool) {
		return endpointset.View{}, nil, false
	})
	defer notReady()
	if _, ok := find(fulcrumz.Snapshot(), "test:///gone"); !ok {
		t.Error("registered balancer missing from Snapshot")
	}
	if _, ok := find(fulcrumz.Snapshot(), "test:///not-ready"); ok {
		t.Error("balancer without a view listed in Snapshot")
	}
	unregister()
	unregister() // idempotent
	if _, ok := find(fulcrumz.Snapshot(), "test:///gone"); ok {
		t.Error("unregistered balancer still in Snapshot")
	}
}

// TestRegisterHedged: a balancer that hedges shows its delay in the JSON
// and the text view; one that does not has no hedging entry.
func TestRegisterHedged(t *testing.T) {
	plain := register(t)
	target := "test:///" + t.Name() + "/hedged"
	set := endpointset.New(endpointset.DefaultConfig(), endpointset.Options{})
	unregister := fulcrumz.RegisterHedged("test", target, func() (endpointset.View, any, bool) {
		return set.View(0), nil, true
	}, func() *fulcrumz.Hedging { return &fulcrumz.Hedging{DelaySeconds: 0.012, Adaptive: true, Known: true} })
	defer unregister()
	chs := fulcrumz.Snapshot()
	if ch, ok := find(chs, plain); !ok || ch.Hedging != nil {
		t.Errorf("plain channel %+v: want no hedging", ch.Hedging)
	}
	ch, ok := find(chs, target)
	if !ok || ch.Hedging == nil || ch.Hedging.DelaySeconds != 0.012 {
		t.Fatalf("hedged channel %+v (%v): want delay 0.012s", ch.Hedging, ok)
	}
	rec := httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/?format=text", nil))
	if !strings.Contains(rec.Body.String(), "hedging: delay 12ms (adaptive)") {
		t.Errorf("text view lacks the hedging delay:\n%s", rec.Body)
	}
}
