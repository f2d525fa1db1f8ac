package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	// Registers least_request_experimental and weighted_round_robin.
	_ "google.golang.org/grpc/balancer/leastrequest"
	_ "google.golang.org/grpc/balancer/weightedroundrobin"
)

// cell is the raw outcome of one scenario x policy run.
type cell struct {
	rec       *recorder
	hits      []int64
	hitsNotOK int64
	markers   []Marker
	qps       []float64 // completed RPCs per second, per round
	p99s      []float64 // ms, per round (set by the HTTP runner)
	zone      *zoneCell // zones scenario only; merge keeps the first's
}

func (c *cell) merge(o *cell) {
	c.rec.merge(o.rec)
	for i := range c.hits {
		c.hits[i] += o.hits[i]
	}
	c.hitsNotOK += o.hitsNotOK
	c.qps = append(c.qps, o.qps...)
	c.p99s = append(c.p99s, o.p99s...)
}

func (c *cell) result(policy string, elapsed time.Duration) Result {
	res := Result{Policy: policy, HitsNotServing: c.hitsNotOK, Hits: c.hits}
	res.fill(c.rec, elapsed)
	if len(c.qps) > 1 {
		res.QPSRounds = c.qps
		res.QPS = median(c.qps)
	}
	if len(c.p99s) > 1 {
		res.P99Rounds = c.p99s
	}
	var total int64
	for _, h := range c.hits {
		total += h
	}
	if res.Completed > 0 {
		res.ExtraLoadPct = max(0, 100*float64(total-res.Completed)/float64(res.Completed))
	}
	for _, h := range c.hits {
		sh := 0.0
		if total > 0 {
			sh = 100 * float64(h) / float64(total)
		}
		res.Shares = append(res.Shares, sh)
	}
	res.Timeline = c.rec.timeline()
	return res
}

// unaryCall sends the scenarios' RPC through cli.
func unaryCall(cli testgrpc.TestServiceClient) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := cli.UnaryCall(ctx, &testpb.SimpleRequest{})
		return err
	}
}

func waitReady(ctx context.Context, cc *grpc.ClientConn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cc.Connect()
	for {
		st := cc.GetState()
		if st == connectivity.Ready {
			return nil
		}
		if !cc.WaitForStateChange(ctx, st) {
			return errors.New("client not READY in time")
		}
	}
}

func (r *Result) fill(rec *recorder, elapsed time.Duration) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var dropped int64
	if n, ok := rec.codes[codeDropped]; ok {
		dropped = n
	}
	r.Completed = rec.all
	r.OK = rec.ok
	r.Total = rec.all + dropped
	r.QPS = float64(rec.all) / elapsed.Seconds()
	if r.Total > 0 {
		r.SuccessPct = 100 * float64(rec.ok) / float64(r.Total)
	}
	q := func(p float64) float64 { return float64(rec.hist.ValueAtQuantile(p)) / 1000 }
	r.P50, r.P90, r.P99, r.P999 = q(50), q(90), q(99), q(99.9)
	r.Max = float64(rec.hist.Max()) / 1000
	r.Errors = make(map[string]int64, len(rec.codes))
	for k, v := range rec.codes {
		r.Errors[k] = v
	}
}

func fmtShares(s []float64) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += "/"
		}
		out += fmt.Sprintf("%.1f", v)
	}
	return out
}

// writeFile writes b to dir/name.
func writeFile(dir, name string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// loadAvg returns the first three fields of /proc/loadavg, or "" where
// there is none.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
