package fulcrumz_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumz"
)

// registerResolvers adds a resolver holding off an empty answer and one
// whose source fails; it returns their targets.
func registerResolvers(t *testing.T) (held, failing string) {
	t.Helper()
	since := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	until := since.Add(45 * time.Second)
	held, failing = "fulcrum://consul/"+t.Name(), "fulcrum://etcd/"+t.Name()
	t.Cleanup(fulcrumz.RegisterResolver(held, func() fulcrumz.ResolverState {
		return fulcrumz.ResolverState{Source: "consul", Endpoints: 2, EmptyHeldSince: &since, EmptyHeldUntil: &until}
	}))
	t.Cleanup(fulcrumz.RegisterResolver(failing, func() fulcrumz.ResolverState {
		return fulcrumz.ResolverState{Source: "etcd", Endpoints: 3, SourceError: "etcd: probing: deadline exceeded"}
	}))
	return held, failing
}

func findResolver(rs []fulcrumz.Resolver, target string) (fulcrumz.Resolver, bool) {
	for _, r := range rs {
		if r.Target == target {
			return r, true
		}
	}
	return fulcrumz.Resolver{}, false
}

// TestHandler_ResolversJSON: ?view=resolvers lists the resolvers, with an
// empty answer held off and since/until when.
func TestHandler_ResolversJSON(t *testing.T) {
	held, failing := registerResolvers(t)
	rec := httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/fulcrum?view=resolvers", nil))
	var rs []fulcrumz.Resolver
	if err := json.Unmarshal(rec.Body.Bytes(), &rs); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	h, ok := findResolver(rs, held)
	if !ok {
		t.Fatalf("no resolver %s in %s", held, rec.Body)
	}
	if h.Source != "consul" || h.Endpoints != 2 || h.EmptyHeldSince == nil || h.EmptyHeldUntil == nil || h.EmptyHeldUntil.Sub(*h.EmptyHeldSince) != 45*time.Second {
		t.Errorf("held resolver %+v: want consul, 2 endpoints, held for 45s", h)
	}
	if !strings.Contains(rec.Body.String(), `"emptyHeldSince": "2026-01-01T10:00:00Z"`) {
		t.Errorf("JSON lacks emptyHeldSince:\n%s", rec.Body)
	}
	f, ok := findResolver(rs, failing)
	if !ok || f.SourceError == "" || f.EmptyHeldSince != nil {
		t.Errorf("failing resolver %+v (found %v): want its error and no hold", f, ok)
	}
	if strings.Contains(strings.Split(rec.Body.String(), failing)[1], "emptyHeld") {
		t.Errorf("a resolver without a hold must omit the hold fields:\n%s", rec.Body)
	}
}

// TestHandler_ResolversText: the table says the empty answer is held off
// and until when, and that a failing source keeps the last known good set.
func TestHandler_ResolversText(t *testing.T) {
	held, failing := registerResolvers(t)
	rec := httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/?view=resolvers&format=text", nil))
	body := rec.Body.String()
	for _, want := range []string{"TARGET", held, "EMPTY ANSWER HELD OFF since 10:00:00.000: keeping the endpoints until 10:00:45.000", failing, "source failing, keeping the last known good set: etcd: probing"} {
		if !strings.Contains(body, want) {
			t.Errorf("text lacks %q:\n%s", want, body)
		}
	}
}

func TestHandler_BadView(t *testing.T) {
	rec := httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/?view=pickers", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `view: "pickers", must be "channels" or "resolvers"`) {
		t.Errorf("%d %q, want 400 naming the view", rec.Code, rec.Body)
	}
}

func TestRegisterResolver_Unregister(t *testing.T) {
	unregister := fulcrumz.RegisterResolver("fulcrum://static/gone", func() fulcrumz.ResolverState { return fulcrumz.ResolverState{Source: "static"} })
	if _, ok := findResolver(fulcrumz.Resolvers(), "fulcrum://static/gone"); !ok {
		t.Fatal("registered resolver missing")
	}
	unregister()
	unregister()
	if _, ok := findResolver(fulcrumz.Resolvers(), "fulcrum://static/gone"); ok {
		t.Error("unregistered resolver still listed")
	}
}
