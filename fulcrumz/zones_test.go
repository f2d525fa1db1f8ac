package fulcrumz_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// TestHandler_Zones: with a local zone, the snapshot shows each zone's
// usable share and load, the spill and why, and the picks by locality.
func TestHandler_Zones(t *testing.T) {
	bc := breaker.DefaultConfig()
	cfg := endpointset.DefaultConfig()
	cfg.LocalZone = "a"
	set := endpointset.New(cfg, endpointset.Options{Probing: true, Breaker: &bc})
	added, _ := set.Update([]endpointset.Spec{
		{Key: "10.0.0.1:80", Addrs: []string{"10.0.0.1:80"}, Weight: 1, Zone: "a"},
		{Key: "10.0.0.2:80", Addrs: []string{"10.0.0.2:80"}, Weight: 1, Zone: "a"},
		{Key: "10.0.0.3:80", Addrs: []string{"10.0.0.3:80"}, Weight: 1, Zone: "b"},
	})
	for i, r := range added {
		set.NewConnection(r)
		set.SetConn(r, endpointset.ConnReady)
		set.SetHealth(r, i != 1, "probe") // 10.0.0.2 (zone a) unhealthy
	}
	d := set.Decide()
	p := d.Picker(picker.DefaultConfig())
	for range 100 {
		i, tok, err := p.Select()
		if err != nil {
			t.Fatal(err)
		}
		p.Finish(i, tok, picker.Outcome{})
	}
	target := "test:///" + t.Name()
	t.Cleanup(fulcrumz.Register("test", target, func() (endpointset.View, any, bool) { return set.View(0), nil, true }))

	rec := httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var chs []fulcrumz.Channel
	if err := json.Unmarshal(rec.Body.Bytes(), &chs); err != nil {
		t.Fatal(err)
	}
	ch, ok := find(chs, target)
	if !ok || ch.Zones == nil {
		t.Fatalf("channel %s without zones in %s", target, rec.Body)
	}
	z := ch.Zones
	// Half of zone a's weight usable: 1 - 1.4 x 0.5 = 30 % spills.
	if z.LocalZone != "a" || z.SpillPercent < 29.99 || z.SpillPercent > 30.01 || !strings.Contains(z.SpillReason, "50 % of its weight usable") {
		t.Errorf("zones %+v: want local a, 30 %% spill with the reason", z)
	}
	if z.LocalPicks+z.RemotePicks != 100 || z.RemotePicks == 0 || z.LocalPicks == 0 {
		t.Errorf("picks %d local, %d remote; want 100 in all, both sides", z.LocalPicks, z.RemotePicks)
	}
	want := []fulcrumz.Zone{
		{Zone: "a", Local: true, Endpoints: 2, Usable: 1, UsablePercent: 50},
		{Zone: "b", Endpoints: 1, Usable: 1, UsablePercent: 100},
	}
	if len(z.Zones) != 2 || z.Zones[0] != want[0] || z.Zones[1] != want[1] {
		t.Errorf("zones %+v, want %+v", z.Zones, want)
	}
	if ch.Endpoints[2].Zone != "b" {
		t.Errorf("endpoint 10.0.0.3 zone %q, want b", ch.Endpoints[2].Zone)
	}

	rec = httptest.NewRecorder()
	fulcrumz.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/?format=text", nil))
	for _, s := range []string{`zones: local "a", health spill 30.0 %`, "spilling: local zone", "zone a (local): 1/2 usable (50 % of weight)", "zone b: 1/1 usable"} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, rec.Body)
		}
	}
}
