package picker

import (
	"fmt"
	"testing"

	"github.com/fulcrum-lb/fulcrum/breaker"
)

// BenchmarkSelectFinish times one Select plus its Finish with the default
// configuration and a default breaker on every endpoint, the engine's part
// of balancer's BenchmarkPickRatio without grpc-go around it.
func BenchmarkSelectFinish(b *testing.B) {
	for _, n := range []int{100, 1000} {
		es := make([]Entry, n)
		for i := range es {
			br := breaker.New(breaker.DefaultConfig(), Nanotime, nil)
			ep := NewEndpoint(fmt.Sprint(i), br)
			ep.ShareClock()
			es[i] = Entry{Endpoint: ep, Weight: 1, Gated: true}
		}
		p := New(DefaultConfig(), es)
		ok := Outcome{Verdict: Success, Timing: Timed}
		b.Run(fmt.Sprintf("endpoints=%d/serial", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				i, t, err := p.Select()
				if err != nil {
					b.Fatal(err)
				}
				p.Finish(i, t, ok)
			}
		})
		b.Run(fmt.Sprintf("endpoints=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i, t, err := p.Select()
					if err != nil {
						b.Error(err)
						return
					}
					p.Finish(i, t, ok)
				}
			})
		})
	}
}
