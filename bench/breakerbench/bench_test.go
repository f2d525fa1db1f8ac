package breakerbench

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Both breakers get the same policy, so that the benchmark compares the
// cost of the same work: trip on 5 consecutive failures or on >= 50%
// failures over a 10s window of 1s buckets with >= 20 requests; 5s open;
// 3 trial requests.
func fulcrumConfig() breaker.Config { return breaker.DefaultConfig() }

func gobreakerSettings() gobreaker.Settings {
	return gobreaker.Settings{
		Name:         "bench",
		MaxRequests:  3,
		Interval:     10 * time.Second,
		BucketPeriod: time.Second,
		Timeout:      5 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= 5 ||
				(c.Requests >= 20 && float64(c.TotalFailures) >= 0.5*float64(c.Requests))
		},
	}
}

var errRPC = errors.New("rpc failed")

// TestPoliciesAgree checks that the two configurations really are the same
// policy on the consecutive trigger: neither opens after 4 failures in a
// row, both open after 5.
func TestPoliciesAgree(t *testing.T) {
	fb := breaker.New(fulcrumConfig(), nil, nil)
	gb := gobreaker.NewTwoStepCircuitBreaker[any](gobreakerSettings())
	for i := range 5 {
		tk, ok := fb.Allow()
		if !ok {
			t.Fatalf("fulcrum refused call %d", i)
		}
		fb.Record(tk, false)
		done, err := gb.Allow()
		if err != nil {
			t.Fatalf("gobreaker refused call %d: %v", i, err)
		}
		done(errRPC)
		if i == 3 && (fb.State() != breaker.Closed || gb.State() != gobreaker.StateClosed) {
			t.Fatalf("after 4 failures: fulcrum %v, gobreaker %v; want both closed", fb.State(), gb.State())
		}
	}
	if fb.State() != breaker.Open || gb.State() != gobreaker.StateOpen {
		t.Fatalf("after 5 failures: fulcrum %v, gobreaker %v; want both open", fb.State(), gb.State())
	}
}

// impl is one way to account for one RPC on the pick path: rpc admits the
// call and reports a success, as Pick followed by Done would.
type impl struct {
	name string
	rpc  func() func(b *testing.B) // returns a per-goroutine body
}

func impls() []impl {
	return []impl{
		{"inflightAtomic", func() func(*testing.B) {
			// What least_request does per pick: in-flight++ in Pick, -- in Done.
			var inflight atomic.Int32
			return func(*testing.B) {
				inflight.Add(1)
				inflight.Add(-1)
			}
		}},
		{"fulcrum", func() func(*testing.B) {
			br := breaker.New(fulcrumConfig(), nil, nil)
			return func(b *testing.B) {
				tk, ok := br.Allow()
				if !ok {
					b.Fatal("refused")
				}
				br.Record(tk, true)
			}
		}},
		{"fulcrumRecordAt", func() func(*testing.B) {
			// The marginal cost when Done already read the clock (for
			// latency) and hands the reading over.
			br := breaker.New(fulcrumConfig(), nil, nil)
			now := int64(time.Second)
			return func(b *testing.B) {
				tk, ok := br.Allow()
				if !ok {
					b.Fatal("refused")
				}
				br.RecordAt(tk, true, now)
			}
		}},
		{"gobreakerExecute", func() func(*testing.B) {
			cb := gobreaker.NewCircuitBreaker[any](gobreakerSettings())
			req := func() (any, error) { return nil, nil }
			return func(b *testing.B) {
				if _, err := cb.Execute(req); err != nil {
					b.Fatal(err)
				}
			}
		}},
		{"gobreakerTwoStep", func() func(*testing.B) {
			cb := gobreaker.NewTwoStepCircuitBreaker[any](gobreakerSettings())
			return func(b *testing.B) {
				done, err := cb.Allow()
				if err != nil {
					b.Fatal(err)
				}
				done(nil)
			}
		}},
	}
}

// BenchmarkAllowRecord is the breaker's share of one RPC: admit, then record
// a success. Every goroutine of the parallel run hits the same breaker, as
// RPCs to one hot endpoint do.
func BenchmarkAllowRecord(b *testing.B) {
	for _, im := range impls() {
		b.Run("impl="+im.name+"/mode=serial", func(b *testing.B) {
			rpc := im.rpc()
			b.ReportAllocs()
			for b.Loop() {
				rpc(b)
			}
		})
		b.Run("impl="+im.name+"/mode=parallel", func(b *testing.B) {
			rpc := im.rpc()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rpc(b)
				}
			})
		})
	}
}

// BenchmarkPickSide is the breaker's share of Pick alone (the ~50ns
// budget), for P2C: ask both candidates whether they admit, admit on the
// chosen one. With gobreaker the filter is State(), which locks and reads
// the clock, and the admission is the two-step Allow. The outcome is not
// recorded (that happens in Done, after the RPC).
func BenchmarkPickSide(b *testing.B) {
	b.Run("impl=fulcrumP2C/mode=parallel", func(b *testing.B) {
		br1 := breaker.New(fulcrumConfig(), nil, nil)
		br2 := breaker.New(fulcrumConfig(), nil, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !br1.Admits() || !br2.Admits() {
					b.Fatal("refused")
				}
				if _, ok := br1.Allow(); !ok {
					b.Fatal("refused")
				}
			}
		})
	})
	b.Run("impl=gobreakerP2C/mode=parallel", func(b *testing.B) {
		cb1 := gobreaker.NewTwoStepCircuitBreaker[any](gobreakerSettings())
		cb2 := gobreaker.NewTwoStepCircuitBreaker[any](gobreakerSettings())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if cb1.State() != gobreaker.StateClosed || cb2.State() != gobreaker.StateClosed {
					b.Fatal("refused")
				}
				if _, err := cb1.Allow(); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// endpoint is what a picker keeps per endpoint for these benchmarks.
type endpoint struct {
	inflight atomic.Int32
	fulcrum  *breaker.Breaker
	gobreak  *gobreaker.TwoStepCircuitBreaker[any]
}

// The pick* functions do what a picker's Pick does for the chosen endpoint
// and return its Done. They are functions, not loop bodies, because
// b.Loop keeps the variables of its body alive and would move a captured
// Ticket to the heap, which a real Pick does not.

func pickInflight(ep *endpoint) (done func(), ok bool) {
	ep.inflight.Add(1)
	return func() { ep.inflight.Add(-1) }, true
}

// Fulcrum's Ticket is a value captured by the one Done closure.
func pickFulcrum(ep *endpoint) (done func(), ok bool) {
	tk, ok := ep.fulcrum.Allow()
	if !ok {
		return nil, false
	}
	ep.inflight.Add(1)
	return func() { ep.inflight.Add(-1); ep.fulcrum.Record(tk, true) }, true
}

// gobreaker's two-step Allow returns a closure of its own, which the Done
// closure must capture: a second allocation.
func pickGobreaker(ep *endpoint) (done func(), ok bool) {
	gdone, err := ep.gobreak.Allow()
	if err != nil {
		return nil, false
	}
	ep.inflight.Add(1)
	return func() { ep.inflight.Add(-1); gdone(nil) }, true
}

// BenchmarkPickDone is the breaker's share of one RPC shaped as a picker
// must run it: Pick admits and returns a Done closure, the RPC calls it.
// inflightAtomic is the floor: the one closure any picker allocates.
func BenchmarkPickDone(b *testing.B) {
	for _, pc := range []struct {
		name string
		pick func(*endpoint) (func(), bool)
	}{
		{"inflightAtomic", pickInflight},
		{"fulcrum", pickFulcrum},
		{"gobreakerTwoStep", pickGobreaker},
	} {
		newEndpoint := func() *endpoint {
			return &endpoint{
				fulcrum: breaker.New(fulcrumConfig(), nil, nil),
				gobreak: gobreaker.NewTwoStepCircuitBreaker[any](gobreakerSettings()),
			}
		}
		b.Run("impl="+pc.name+"/mode=serial", func(b *testing.B) {
			ep := newEndpoint()
			b.ReportAllocs()
			for b.Loop() {
				done, ok := pc.pick(ep)
				if !ok {
					b.Fatal("refused")
				}
				done()
			}
		})
		b.Run("impl="+pc.name+"/mode=parallel", func(b *testing.B) {
			ep := newEndpoint()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					done, ok := pc.pick(ep)
					if !ok {
						b.Fatal("refused")
					}
					done()
				}
			})
		})
	}
}
