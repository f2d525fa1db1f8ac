package fulcrum_test

import (
	"context"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/fulcrum-lb/fulcrum"
)

// BenchmarkHedging_UnaryCall measures a unary call to two local servers
// answering at once, without and with WithHedging (whose delay then never
// passes): the cost of the interceptor and the hedged pick.
func BenchmarkHedging_UnaryCall(b *testing.B) {
	f := startHedgeFleet(b, 2, func(string, int, string) (time.Duration, bool) { return 0, false })
	for _, tc := range []struct {
		name string
		p    *fulcrum.HedgingPolicy
	}{{"hedging=off", nil}, {"hedging=on", &fulcrum.HedgingPolicy{}}} {
		b.Run(tc.name, func(b *testing.B) {
			client := dialHedged(b, f, tc.p, "")
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
