package balancer

import (
	"context"
	"sync"
	"testing"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// TestGRPCPicker_SampledShareDone: under load (picks fast enough to run
// the picker's coarse clock) with the latency term, RPCs that are not
// timed share their endpoint's cached Done, bounded ones (a deadline)
// included across age slots (300ms: two or three 134ms slots); every
// count returns to zero.
func TestGRPCPicker_SampledShareDone(t *testing.T) {
	var entries []picker.Entry
	var children []grpcbalancer.Picker
	for range 4 {
		ep := picker.NewEndpoint("x", breaker.New(breaker.DefaultConfig(), picker.Nanotime, nil))
		ep.ShareClock()
		entries = append(entries, picker.Entry{Endpoint: ep, Weight: 1, Gated: true})
		children = append(children, okChild{})
	}
	gp := newGRPCPicker(picker.New(picker.DefaultConfig(), entries), children, nil, failureMask(defaultFailureCodes))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stop := time.Now().Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info := grpcbalancer.PickInfo{}
			if g == 0 {
				info.Ctx = ctx // bounded
			}
			for time.Now().Before(stop) {
				for range 100 {
					res, err := gp.Pick(info)
					if err != nil {
						t.Error(err)
						return
					}
					res.Done(grpcbalancer.DoneInfo{BytesSent: true, BytesReceived: true})
				}
			}
		}()
	}
	wg.Wait()
	shared := 0
	for i := range entries {
		if n := entries[i].Endpoint.InFlight(); n != 0 {
			t.Errorf("endpoint %d: %d in flight after every Done", i, n)
		}
		if gp.slots[i].done.Load() != nil {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no RPC shared a cached Done: none was left untimed")
	}
}
