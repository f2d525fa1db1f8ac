// Command zones shows zone-aware routing: six gRPC servers on 127.0.0.1
// (5 ms of service time), three in zone "a" (the client's) and three in
// zone "b" (2 ms further away), and a client with "localZone":"a". While zone a is healthy it
// takes every RPC; when two of its three servers fail their health probes
// about half of the RPCs spill to zone b (1 - 1.4 x 1/3 = 53 %), and none
// is lost; when they recover, the RPCs come back.
//
//	go run ./examples/zones
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	// Registers the weighted_least_request policy and the fulcrum:// scheme.
	_ "github.com/fulcrum-lb/fulcrum"
	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
)

// options of one run; the test shortens them.
type options struct {
	RPCs      int           // per phase
	Workers   int           // concurrent callers
	Local     time.Duration // service time in zone a
	CrossZone time.Duration // added for zone b
}

func defaultOptions() options {
	return options{RPCs: 2000, Workers: 4, Local: 5 * time.Millisecond, CrossZone: 2 * time.Millisecond}
}

// phase is what one phase measured.
type phase struct {
	name          string
	local, remote int64 // RPCs served by zone a and zone b
	failed        int
	perBackend    []int64
}

func (p phase) localShare() float64 {
	if n := p.local + p.remote; n > 0 {
		return 100 * float64(p.local) / float64(n)
	}
	return 0
}

const serviceConfig = `{"loadBalancingConfig":[{"weighted_least_request":{
	"localZone":"a",
	"healthProbe":{"interval":"50ms","timeout":"40ms"},
	"slowStart":{"window":"2s"}
}}]}`

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, os.Stdout, defaultOptions()); err != nil {
		fmt.Fprintln(os.Stderr, "zones:", err)
		os.Exit(1)
	}
}

// run starts the fleet, dials it and runs the three phases, printing each.
func run(ctx context.Context, w io.Writer, o options) ([]phase, error) {
	fleet, err := testutil.StartFleet(6, testutil.Options{})
	if err != nil {
		return nil, err
	}
	defer fleet.Stop()
	var entries []string
	for i, b := range fleet {
		zone, d := "a", o.Local
		if i >= 3 {
			zone, d = "b", o.Local+o.CrossZone
		}
		b.SetDelay(d)
		entries = append(entries, b.Addr+";zone="+zone)
	}
	target := "fulcrum://static/" + strings.Join(entries, ",")
	fmt.Fprintf(w, "zone a: %s\nzone b: %s\nclient: localZone \"a\", target %s\n\n",
		strings.Join(fleet.Addrs()[:3], ", "), strings.Join(fleet.Addrs()[3:], ", "), target)
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(serviceConfig))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cc.Connect() // grpc.NewClient starts idle
	client := testgrpc.NewTestServiceClient(cc)

	setHealth := func(i int, s healthpb.HealthCheckResponse_ServingStatus) { fleet[i].Health.SetServingStatus("", s) }
	var phases []phase
	steps := []struct {
		name   string
		before func()
		ready  func(fulcrumz.Channel) bool
	}{
		{"zone a healthy", func() {}, func(ch fulcrumz.Channel) bool { return usable(ch, "a") == 3 && usable(ch, "b") == 3 }},
		{"a0, a1 NOT_SERVING", func() {
			setHealth(0, healthpb.HealthCheckResponse_NOT_SERVING)
			setHealth(1, healthpb.HealthCheckResponse_NOT_SERVING)
		}, func(ch fulcrumz.Channel) bool { return usable(ch, "a") == 1 }},
		// Back from unhealthy, a0 and a1 ramp up (slow start): zone a
		// has less to offer meanwhile, and the load rule spills what a2
		// alone cannot take.
		{"a0, a1 slow start", func() {
			setHealth(0, healthpb.HealthCheckResponse_SERVING)
			setHealth(1, healthpb.HealthCheckResponse_SERVING)
		}, func(ch fulcrumz.Channel) bool { return usable(ch, "a") == 3 }},
		{"a0, a1 ramped up", func() {}, func(ch fulcrumz.Channel) bool { return usable(ch, "a") == 3 && ch.Counts.SlowStart == 0 }},
	}
	for _, s := range steps {
		s.before()
		z, err := waitZones(ctx, target, s.ready)
		if err != nil {
			return phases, fmt.Errorf("%s: %w", s.name, err)
		}
		fleet.ResetHits()
		p := phase{name: s.name, failed: send(ctx, client, o)}
		p.perBackend = fleet.Hits()
		for i, h := range p.perBackend {
			if i < 3 {
				p.local += h
			} else {
				p.remote += h
			}
		}
		phases = append(phases, p)
		fmt.Fprintf(w, "%-20s %5.1f %% local (%d in zone a, %d in zone b), %d failed; per backend a0-a2, b0-b2: %v\n",
			p.name+":", p.localShare(), p.local, p.remote, p.failed, p.perBackend)
		fmt.Fprintf(w, "%20s health spill %.1f %%%s\n", "", z.SpillPercent, reason(z))
	}
	fmt.Fprintln(w, "\nfulcrumz after the run:")
	fulcrumz.WriteText(w, snapshotOf(target))
	return phases, nil
}

func reason(z fulcrumz.Zones) string {
	if z.SpillReason == "" {
		return ""
	}
	return ": " + z.SpillReason
}

// send makes o.RPCs calls from o.Workers goroutines and returns how many
// failed.
func send(ctx context.Context, c testgrpc.TestServiceClient, o options) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range o.RPCs / o.Workers {
				ctx, cancel := context.WithTimeout(ctx, time.Second)
				_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{})
				cancel()
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed
}

func snapshotOf(target string) []fulcrumz.Channel {
	var out []fulcrumz.Channel
	for _, ch := range fulcrumz.Snapshot() {
		if ch.Target == target {
			out = append(out, ch)
		}
	}
	return out
}

// waitZones polls the channel's snapshot until ready holds.
func waitZones(ctx context.Context, target string, ready func(fulcrumz.Channel) bool) (fulcrumz.Zones, error) {
	var last fulcrumz.Zones
	for {
		for _, ch := range snapshotOf(target) {
			if ch.Zones != nil {
				last = *ch.Zones
				if ready(ch) {
					return last, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return last, errors.New("timed out waiting for the probes to decide")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func usable(ch fulcrumz.Channel, name string) int {
	for _, zn := range ch.Zones.Zones {
		if zn.Zone == name {
			return zn.Usable
		}
	}
	return -1
}
