package driver

import (
	"context"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/internal/clock/clocktest"
	"github.com/fulcrum-lb/fulcrum/internal/testutil"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// TestObserver_Hedging: once an adapter hands its hedger to the observer,
// hedges sent and won reach the channel's metrics, and fulcrumz shows the
// delay; before, the snapshot has no hedging entry.
func TestObserver_Hedging(t *testing.T) {
	target := "driver-test:" + t.Name()
	clk := clocktest.New()
	s, _ := panicSet(clk)
	mr := testutil.NewMetricsRecorder()
	obs := NewObserver(s, ObserverOptions{
		Transport: "test", Target: target, Recorder: metrics.GRPC(mr),
		Config: func() (any, time.Duration, bool) { return map[string]int{}, 0, true },
	})
	defer obs.Close()
	if ch, ok := findChannel(target); !ok || ch.Hedging != nil {
		t.Fatalf("snapshot %+v (%v): want the channel, without hedging", ch, ok)
	}
	h := hedge.New(hedge.Policy{Delay: config.Duration(30 * time.Millisecond)}, hedge.Options{Clock: clk})
	obs.Hedging(h)
	obs.Hedging(h) // idempotent
	// The first attempt fails non-fatally: the hedge goes at once and wins.
	r, release := hedge.Do(context.Background(), h, func(_ context.Context, n int) int { return n },
		func(n int) hedge.Judgement { return hedge.Judgement{Final: n > 0} }, func(int) {})
	release()
	if r != 1 {
		t.Fatalf("result of attempt %d, want the hedge's", r)
	}
	if sent, won := mr.Count(metrics.HedgesSent.Name, target), mr.Count(metrics.HedgesWon.Name, target); sent != 1 || won != 1 {
		t.Errorf("hedges_sent %d, hedges_won %d; want 1, 1", sent, won)
	}
	ch, _ := findChannel(target)
	if hg := ch.Hedging; hg == nil || hg.DelaySeconds != 0.03 || hg.Adaptive || !hg.Known {
		t.Errorf("fulcrumz hedging %+v, want the fixed delay 0.03s", hg)
	}
}
