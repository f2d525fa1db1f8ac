package endpointset

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// newZonedSet returns a Set over nine endpoints a..i, three per zone
// (a-c in "z1", d-f in "z2", g-i in "z3"), all connected and healthy,
// deciding for a client in local.
func newZonedSet(t *testing.T, local string) (*Set, *clock, []*Record) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.LocalZone = local
	s := New(cfg, Options{Probing: true, Warmup: true, Breaker: testBreaker(), Now: clk.now})
	var specs []Spec
	for i := range 9 {
		k := string(rune('a' + i))
		specs = append(specs, Spec{Key: k, Addrs: []string{k}, Weight: 1, Zone: fmt.Sprintf("z%d", 1+i/3)})
	}
	s.Update(specs)
	recs := s.Records()
	for _, r := range recs {
		connect(s, r, true)
	}
	return s, clk, recs
}

func entryKeys(d Decision) string {
	var ks []string
	for _, r := range d.Records {
		ks = append(ks, r.Key)
	}
	return strings.Join(ks, "")
}

func TestZones_HealthyLocalZoneTakesEverything(t *testing.T) {
	s, _, _ := newZonedSet(t, "z2")
	d := s.Decide()
	if want := (ZoneSplit{Aware: true, Local: 3}); d.Zone != want {
		t.Fatalf("Zone = %+v, want %+v", d.Zone, want)
	}
	// Local first, each side in key order; entries and records agree.
	if got := entryKeys(d); got != "defabcghi" {
		t.Fatalf("candidates in order %q, want defabcghi", got)
	}
	for i, r := range d.Records {
		if d.Entries[i].Endpoint != r.Hot {
			t.Fatalf("entry %d is not record %s's endpoint", i, r.Key)
		}
	}
}

func TestZones_SpillFollowsTheShortfall(t *testing.T) {
	for _, tc := range []struct {
		name      string
		unhealthy string // local endpoints made unhealthy
		spill     float64
	}{
		// 2/3 usable x 1.4 = 0.93: 7 % spills.
		{"one of three down", "a", 1 - 1.4*2/3},
		// 1/3 x 1.4 = 0.47: 53 % spills.
		{"two of three down", "ab", 1 - 1.4/3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newZonedSet(t, "z1")
			for _, k := range tc.unhealthy {
				s.SetHealth(s.Get(string(k)), false, "down")
			}
			d := s.Decide()
			if !d.Zone.Aware || d.Zone.Local != 3-len(tc.unhealthy) {
				t.Fatalf("Zone = %+v, want aware with %d local", d.Zone, 3-len(tc.unhealthy))
			}
			if math.Abs(d.Zone.Spill-tc.spill) > 1e-9 {
				t.Fatalf("Spill = %v, want %v", d.Zone.Spill, tc.spill)
			}
			if !strings.Contains(d.Zone.Reason, `local zone "z1"`) {
				t.Fatalf("Reason = %q, want it to name the local zone", d.Zone.Reason)
			}
			// Recovery: the spill ends with the shortfall.
			for _, k := range tc.unhealthy {
				s.SetHealth(s.Get(string(k)), true, "up")
			}
			if d := s.Decide(); d.Zone.Spill != 0 || d.Zone.Reason != "" || d.Zone.Local != 3 {
				t.Fatalf("after recovery Zone = %+v, want no spill, 3 local", d.Zone)
			}
		})
	}
}

func TestZones_EjectedAndKeptByCapAreAShortfall(t *testing.T) {
	s, _, recs := newZonedSet(t, "z1")
	trip(t, recs[0])
	d := s.Decide()
	if want := 1 - 1.4*2/3; math.Abs(d.Zone.Spill-want) > 1e-9 || d.Zone.Local != 2 {
		t.Fatalf("one ejected: Zone = %+v, want spill %v over 2 local", d.Zone, want)
	}
	// The cap keeps a fast-failing endpoint in rotation; it is still no
	// capacity of the zone.
	cfg := DefaultConfig()
	cfg.LocalZone, cfg.MaxEjectionPercent = "z1", 0
	s.SetConfig(cfg, Options{Probing: true, Warmup: true, Breaker: testBreaker()})
	d = s.Decide()
	if d.Zone.Local != 3 || math.Abs(d.Zone.Spill-(1-1.4*2/3)) > 1e-9 {
		t.Fatalf("kept by cap: Zone = %+v, want 3 local candidates and the same spill", d.Zone)
	}
}

func TestZones_PendingLocalEndpointsDoNotCount(t *testing.T) {
	s, _, _ := newZonedSet(t, "z1")
	// c reconnects with a new connection: warming, waiting for its probe.
	s.NewConnection(s.Get("c"))
	d := s.Decide()
	if d.Results[2].State != Warming {
		t.Fatalf("c is %v, want warming", d.Results[2].State)
	}
	if d.Zone.Spill != 0 || d.Zone.Local != 2 {
		t.Fatalf("Zone = %+v, want no spill over the 2 proven local endpoints", d.Zone)
	}
}

func TestZones_UnawareCases(t *testing.T) {
	t.Run("no local zone", func(t *testing.T) {
		s, _, _ := newZonedSet(t, "")
		if d := s.Decide(); d.Zone != (ZoneSplit{}) || entryKeys(d) != "abcdefghi" {
			t.Fatalf("Zone = %+v, order %q; want zone-unaware, key order", d.Zone, entryKeys(d))
		}
	})
	t.Run("no endpoint in the local zone", func(t *testing.T) {
		s, _, _ := newZonedSet(t, "z9")
		d := s.Decide()
		if d.Zone.Aware || d.Zone.Spill != 1 || !strings.Contains(d.Zone.Reason, `no endpoint in local zone "z9"`) {
			t.Fatalf("Zone = %+v, want unaware, all spilled, with the reason", d.Zone)
		}
		if len(d.Entries) != 9 {
			t.Fatalf("%d candidates, want 9", len(d.Entries))
		}
	})
	t.Run("local zone all down", func(t *testing.T) {
		s, _, _ := newZonedSet(t, "z1")
		for _, k := range "abc" {
			s.SetHealth(s.Get(string(k)), false, "down")
		}
		d := s.Decide()
		if d.Zone.Aware || d.Zone.Spill != 1 || !strings.Contains(d.Zone.Reason, "no usable endpoint") || len(d.Entries) != 6 {
			t.Fatalf("Zone = %+v with %d candidates, want all 6 remote, spilled, with the reason", d.Zone, len(d.Entries))
		}
	})
	t.Run("nothing usable elsewhere", func(t *testing.T) {
		s, _, _ := newZonedSet(t, "z1")
		cfg := DefaultConfig()
		cfg.LocalZone, cfg.PanicThresholdPercent = "z1", 0
		s.SetConfig(cfg, Options{Probing: true, Warmup: true, Breaker: testBreaker()})
		for _, k := range "defghi" {
			s.SetHealth(s.Get(string(k)), false, "down")
		}
		if d := s.Decide(); d.Zone.Aware || d.Zone.Spill != 0 || len(d.Entries) != 3 {
			t.Fatalf("Zone = %+v with %d candidates, want local only, no spill", d.Zone, len(d.Entries))
		}
	})
	t.Run("panic mode", func(t *testing.T) {
		s, _, _ := newZonedSet(t, "z1")
		for _, k := range "abcdef" {
			s.SetHealth(s.Get(string(k)), false, "down")
		}
		d := s.Decide()
		if !d.Panic || d.Zone != (ZoneSplit{}) || len(d.Entries) != 9 {
			t.Fatalf("Panic %v, Zone = %+v, %d candidates; want panic over all 9, zone-unaware", d.Panic, d.Zone, len(d.Entries))
		}
	})
}

func TestConfig_LocalZoneBounds(t *testing.T) {
	for _, z := range []string{"", "us-east-1a", "europe-west1-b", "topology/zone.x", strings.Repeat("z", 128)} {
		c := DefaultConfig()
		c.LocalZone = z
		if err := c.Validate(); err != nil {
			t.Errorf("localZone %q: %v, want valid", z, err)
		}
	}
	for _, z := range []string{"a b", "a\tb", "a\x00", strings.Repeat("z", 129), "\xff"} {
		c := DefaultConfig()
		c.LocalZone = z
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "localZone: ") || !strings.Contains(err.Error(), "must be at most 128 bytes") {
			t.Errorf("localZone %q: error %v, want one naming localZone and the rule", z, err)
		}
	}
}
