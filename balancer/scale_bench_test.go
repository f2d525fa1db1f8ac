package balancer

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/connectivity"
)

// scaleBenchPolicies are the policies of the scale benchmarks: grpc-go's
// round_robin and least_request_experimental beside Fulcrum with its
// defaults (probes off: the fake SubConns cannot answer them), with and
// without weights (the alias table is only built for unequal weights).
var scaleBenchPolicies = []pickBenchPolicy{
	pickBenchPolicies[0], pickBenchPolicies[1], pickBenchPolicies[2], pickBenchPolicies[3],
}

var scaleSizes = []int{1000, 10000}

// skipSlow skips grpc-go's policies at 10 000 endpoints unless
// FULCRUM_BENCH_SLOW=1: endpointsharding re-aggregates every child on every
// child update, so building them takes O(N²) (round_robin ~23 s,
// least_request_experimental ~175 s on the 2-core machine of the README).
func skipSlow(b *testing.B, pol pickBenchPolicy, n int) {
	if n >= 10000 && pol.name != Name && os.Getenv("FULCRUM_BENCH_SLOW") != "1" {
		b.Skipf("%s over %d endpoints takes minutes to build; set FULCRUM_BENCH_SLOW=1", pol.name, n)
	}
}

// BenchmarkStartup measures the wall time from one resolver update with N
// endpoints to a READY picker over all N whose picks spread over them, on
// the benchmarks' fake ClientConn (every SubConn driven CONNECTING ->
// READY -> health READY right after the update, as a ClientConn whose
// connections succeed at once would). It also reports the heap the
// balancer holds per endpoint once ready (after a GC, so live memory
// only; the fake SubConns count, grpc-go's real ones would add their own
// transport whatever the policy). pickers/op counts the states published
// on the way.
//
//	go test -run '^$' -bench BenchmarkStartup -benchtime 1x -count 3 ./balancer/
func BenchmarkStartup(b *testing.B) {
	for _, pol := range scaleBenchPolicies {
		for _, n := range scaleSizes {
			b.Run(fmt.Sprintf("policy=%s/endpoints=%d", pol.label, n), func(b *testing.B) {
				skipSlow(b, pol, n)
				var heap uint64
				var pickers int64
				for range b.N {
					b.StopTimer()
					before := liveHeap()
					b.StartTimer()
					bal, cc, cfg := newBenchBalancer(b, pol)
					p := connectAll(b, pol, bal, cc, cfg, benchEndpoints(pol, n))
					b.StopTimer()
					checkSpread(b, pol, p, n)
					heap += liveHeap() - before
					pickers += cc.updateCount()
					runtime.KeepAlive(p)
					bal.Close()
					b.StartTimer()
				}
				b.ReportMetric(float64(heap)/float64(b.N)/float64(n), "heapB/endpoint")
				b.ReportMetric(float64(pickers)/float64(b.N), "pickers/op")
			})
		}
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkEvent measures what one endpoint's state change costs at N
// endpoints, from the event to the READY picker that reflects it.
//
//   - single: one isolated event (op = one endpoint's health listener
//     reporting TRANSIENT_FAILURE, or READY again, until the picker
//     without it, or with it, is published; 10x that time passes, off the
//     clock, before the next): the latency of one event and the cost of
//     one rebuild.
//
//   - burst: N/10 endpoints go down, then up, as fast as the listener
//     calls return (op = one burst of N/10 + N/10 events, until the final
//     picker is published); ns/event is the amortised cost of one event,
//     pickers/op the number of pickers published per burst.
//
//     go test -run '^$' -bench BenchmarkEvent -benchmem -count 3 ./balancer/
func BenchmarkEvent(b *testing.B) {
	for _, pol := range scaleBenchPolicies {
		for _, n := range scaleSizes {
			b.Run(fmt.Sprintf("policy=%s/endpoints=%d", pol.label, n), func(b *testing.B) {
				_, bal := cachedReadyBalancer(b, pol, n)
				cc := bal.cc
				scs := cc.allSubConns()
				b.Run("single", func(b *testing.B) {
					b.ReportAllocs()
					start := cc.updateCount()
					var last time.Duration
					for i := range b.N {
						// Isolated events: weighted_least_request rests
						// a few decisions' time after each decision
						// (publish.go), which back-to-back events would
						// measure instead of one event's latency.
						b.StopTimer()
						time.Sleep(min(10*last, 50*time.Millisecond))
						b.StartTimer()
						t0 := time.Now()
						k := (i / 2) % n
						if i%2 == 0 {
							scs[k].reportHealth(connectivity.TransientFailure)
							waitReadyPicker(b, cc, pol, n-1)
						} else {
							scs[k].reportHealth(connectivity.Ready)
							waitReadyPicker(b, cc, pol, n)
						}
						last = time.Since(t0)
					}
					if b.N%2 == 1 {
						scs[(b.N/2)%n].reportHealth(connectivity.Ready)
						waitReadyPicker(b, cc, pol, n)
					}
					b.ReportMetric(float64(cc.updateCount()-start)/float64(b.N), "pickers/op")
				})
				b.Run("burst", func(b *testing.B) {
					b.ReportAllocs()
					k := n / 10
					start := cc.updateCount()
					for range b.N {
						for _, sc := range scs[:k] {
							sc.reportHealth(connectivity.TransientFailure)
						}
						waitReadyPicker(b, cc, pol, n-k)
						for _, sc := range scs[:k] {
							sc.reportHealth(connectivity.Ready)
						}
						waitReadyPicker(b, cc, pol, n)
					}
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2*k), "ns/event")
					b.ReportMetric(float64(cc.updateCount()-start)/float64(b.N), "pickers/op")
				})
			})
		}
	}
}

// benchBalancer is a built, READY balancer with its ClientConn.
type benchBalancer struct {
	bal grpcbalancer.Balancer
	cc  *benchClientConn
}

var readyBalancers = map[string]*benchBalancer{} // benchmarks run one at a time

// cachedReadyBalancer is cachedReadyPicker for benchmarks that drive the
// balancer further: one per policy and size for the whole process.
func cachedReadyBalancer(b *testing.B, pol pickBenchPolicy, n int) (grpcbalancer.Picker, *benchBalancer) {
	skipSlow(b, pol, n)
	key := fmt.Sprintf("%s/%d", pol.label, n)
	if bb, ok := readyBalancers[key]; ok {
		_, p := bb.cc.pickers()
		return p, bb
	}
	bal, cc, cfg := newBenchBalancer(b, pol)
	p := connectAll(b, pol, bal, cc, cfg, benchEndpoints(pol, n))
	checkSpread(b, pol, p, n)
	bb := &benchBalancer{bal: bal, cc: cc}
	readyBalancers[key] = bb
	return p, bb
}
