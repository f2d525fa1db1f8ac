package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestZones runs the example with fewer RPCs and checks what it prints and
// measures: every RPC local while zone a is healthy and after the ramp,
// none on the two NOT_SERVING servers and about half spilled meanwhile
// (1 - 1.4/3 = 53 % by health; the load rule may add a little while a2 is
// alone), and no RPC failed. The counts are the servers'.
func TestZones(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	o := defaultOptions()
	o.RPCs = 400
	var out bytes.Buffer
	ps, err := run(ctx, &out, o)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if len(ps) != 4 {
		t.Fatalf("%d phases, want 4\n%s", len(ps), out.String())
	}
	for _, p := range ps {
		if p.failed != 0 || p.local+p.remote != int64(o.RPCs) {
			t.Errorf("%s: %d failed, %d served; want 0 failed, %d served", p.name, p.failed, p.local+p.remote, o.RPCs)
		}
	}
	for _, i := range []int{0, 3} {
		if ps[i].remote != 0 {
			t.Errorf("%s: %d RPCs left zone a, want none\n%s", ps[i].name, ps[i].remote, out.String())
		}
	}
	down := ps[1]
	if down.perBackend[0] != 0 || down.perBackend[1] != 0 {
		t.Errorf("%s: the NOT_SERVING servers got %v", down.name, down.perBackend[:2])
	}
	if remote := 100 - down.localShare(); remote < 46 || remote > 75 {
		t.Errorf("%s: %.1f %% spilled, want 46-75 %%\n%s", down.name, remote, out.String())
	}
	for _, want := range []string{"health spill 53.3 %", `zones: local "a"`, "zone a (local): 3/3 usable"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
