package bench

import (
	"context"
	"fmt"
	"io"
	rand "math/rand/v2"
	"os"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver/manual"

	"github.com/fulcrum-lb/fulcrum"

	// Registers least_request_experimental and weighted_round_robin.
	_ "google.golang.org/grpc/balancer/leastrequest"
	_ "google.golang.org/grpc/balancer/weightedroundrobin"
)

// Options configure a benchmark run. Zero fields take the defaults of
// DefaultOptions.
type Options struct {
	// Duration is the measured part of each scenario x policy run.
	Duration time.Duration
	// Warmup precedes it, under the same load, unrecorded.
	Warmup time.Duration
	// Rate is the open-loop arrival rate, RPCs per second.
	Rate float64
	// Deadline of every RPC.
	Deadline time.Duration
	// MaxInFlight caps outstanding open-loop RPCs; arrivals beyond it are
	// counted as DROPPED errors.
	MaxInFlight int
	// Workers of the closed-loop throughput scenario.
	Workers int
	// Bucket is the width of a latency-over-time bucket.
	Bucket time.Duration
	// Seed makes arrivals and churn repeatable; every policy of a
	// scenario sees the same arrival sequence.
	Seed uint64
	// Scenarios and Policies select by name; empty means all.
	Scenarios []string
	Policies  []string
	// OutDir receives bench-results.md, bench-results.json and the PNGs.
	OutDir string
	// Command is printed at the top of the markdown.
	Command string
	// Commit identifies the code measured (optional).
	Commit string
	// Log receives one progress line per run; nil: discard.
	Log io.Writer
}

// DefaultOptions returns the options of the full benchmark.
func DefaultOptions() Options {
	return Options{
		Duration:    6 * time.Second,
		Warmup:      time.Second,
		Rate:        600,
		Deadline:    time.Second,
		MaxInFlight: 1000,
		Workers:     16,
		Bucket:      250 * time.Millisecond,
		Seed:        1,
		OutDir:      "docs",
	}
}

func (o *Options) fill() {
	d := DefaultOptions()
	if o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Rate <= 0 {
		o.Rate = d.Rate
	}
	if o.Deadline <= 0 {
		o.Deadline = d.Deadline
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = d.MaxInFlight
	}
	if o.Workers <= 0 {
		o.Workers = d.Workers
	}
	if o.Bucket <= 0 {
		o.Bucket = d.Bucket
	}
	if o.OutDir == "" {
		o.OutDir = d.OutDir
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Run runs the selected scenarios for the selected policies, one after
// the other, and writes the report files to o.OutDir.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.fill()
	scs, err := selectScenarios(o.Scenarios)
	if err != nil {
		return nil, err
	}
	if _, err := selectPolicies(o.Policies); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{
		Command:    o.Command,
		Date:       time.Now().UTC().Format(time.RFC3339),
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		Commit:     o.Commit,
		Duration:   o.Duration.String(),
		Warmup:     o.Warmup.String(),
		Rate:       o.Rate,
		Deadline:   o.Deadline.String(),
		Workers:    o.Workers,
		LoadAvg:    [2]string{loadAvg(), ""},
	}
	for si, s := range scs {
		pols := s.defaultPolicies()
		if len(o.Policies) > 0 {
			pols, _ = selectPolicies(o.Policies)
		}
		sr := ScenarioResult{Name: s.name, Title: s.title, Models: s.describe(o), Notes: s.notes, ClosedLoop: s.closedLoop, Fault: s.fault}
		for _, w := range s.weights {
			sr.Weights = append(sr.Weights, w)
		}
		// A closed-loop run measures CPU cost, which drifts with whatever
		// else the machine runs: interleave the policies in ~1s rounds
		// (forward, backward, forward, ...) so that drift hits them alike,
		// and report the median round.
		rounds, dur, warm := 1, o.Duration, o.Warmup
		if s.stretch > 0 {
			dur = time.Duration(float64(dur) * s.stretch)
		}
		if s.closedLoop {
			rounds = max(3, int(o.Duration/time.Second))
			dur, warm = o.Duration/time.Duration(rounds), min(o.Warmup, 300*time.Millisecond)
		}
		cells := make([]*cell, len(pols))
		for round := range rounds {
			for k := range pols {
				j := k
				if round%2 == 1 {
					j = len(pols) - 1 - k
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				c, err := runOne(ctx, o, s, pols[j], uint64(si), warm, dur)
				if err != nil {
					return nil, fmt.Errorf("bench: %s/%s: %w", s.name, pols[j].Name, err)
				}
				if cells[j] == nil {
					cells[j] = c
				} else {
					cells[j].merge(c)
				}
			}
		}
		for j, p := range pols {
			c := cells[j]
			res := c.result(p.Name, time.Duration(rounds)*dur)
			if c.zone != nil {
				res.Zone = c.zone.result(c.rec)
			}
			sr.Markers = c.markers
			sr.Results = append(sr.Results, res)
			fmt.Fprintf(o.Log, "%-14s %-16s qps=%7.1f ok=%7.3f%% p50=%6.2fms p99=%7.2fms p99.9=%7.2fms errors=%v shares=%v notServing=%d extraLoad=%.2f%%\n",
				s.name, p.Name, res.QPS, res.SuccessPct, res.P50, res.P99, res.P999, res.Errors, fmtShares(res.Shares), res.HitsNotServing, res.ExtraLoadPct)
		}
		if s.zones != nil {
			sr.ZoneTargets = evaluateZoneTargets(sr)
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	rep.LoadAvg[1] = loadAvg()
	rep.Targets = evaluateTargets(rep)
	if err := rep.write(o.OutDir); err != nil {
		return nil, err
	}
	return rep, nil
}

// runOne runs scenario s under policy p on a fresh fleet and client,
// measuring for dur.
func runOne(ctx context.Context, o Options, s scenario, p Policy, si uint64, warm, dur time.Duration) (*cell, error) {
	e := &env{weights: s.weights, zones: s.zones, rate: o.Rate, active: make([]bool, s.n)}
	defer func() {
		for _, b := range e.backends {
			b.close()
		}
	}()
	for i := range s.n {
		b, err := newBackend(i, s.opts(i))
		if err != nil {
			return nil, err
		}
		e.backends = append(e.backends, b)
		e.active[i] = s.initial == 0 || i < s.initial
	}
	e.res = manual.NewBuilderWithScheme("bench")
	e.res.InitialState(e.state())

	var evs []event
	if s.events != nil {
		evs = s.events(e, dur) // may also set standing conditions
	}
	var markers []Marker
	for _, ev := range evs {
		if ev.label != "" {
			markers = append(markers, Marker{T: ev.at.Seconds(), Label: ev.label})
		}
	}

	sc := fmt.Sprintf(`{"loadBalancingConfig":[%s]}`, p.Config)
	dopts := []grpc.DialOption{
		grpc.WithResolvers(e.res),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc),
	}
	if p.Hedging != nil {
		dopts = append(dopts, fulcrum.WithHedging(*p.Hedging))
	}
	cc, err := grpc.NewClient("bench:///fleet", dopts...)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	if err := waitReady(ctx, cc, 10*time.Second); err != nil {
		return nil, err
	}
	cli := testgrpc.NewTestServiceClient(cc)

	// The events goroutine starts with the measured part and ends with
	// the run (or earlier, when every event has fired).
	measure := make(chan time.Time, 1)
	evCtx, evCancel := context.WithCancel(ctx)
	evDone := make(chan struct{})
	go func() {
		defer close(evDone)
		var t0 time.Time
		select {
		case t0 = <-measure:
		case <-evCtx.Done():
			return
		}
		for _, ev := range evs {
			if d := time.Until(t0.Add(ev.at)); d > 0 {
				select {
				case <-time.After(d):
				case <-evCtx.Done():
					return
				}
			}
			if ev.fn != nil {
				ev.fn()
			}
		}
	}()
	onMeasure := func() {
		now := time.Now()
		for _, b := range e.backends {
			b.hits.Store(0)
			b.hitsNotOK.Store(0)
			if s.zones != nil {
				b.series.Store(newSeries(now, dur, o.Bucket))
			}
		}
		measure <- now
	}

	rng := rand.New(rand.NewPCG(o.Seed, si))
	var rec *recorder
	start := time.Now()
	if s.closedLoop {
		rec = newRecorder(start.Add(warm), dur, o.Bucket)
		closedLoop(ctx, cli, o.Workers, warm, dur, o.Deadline, rec, onMeasure)
	} else {
		// The recorder's clock starts at the first measured arrival's
		// bucket origin: warmup end.
		rec = newRecorder(start.Add(warm), dur, o.Bucket)
		openLoop(ctx, unaryCall(cli), rng, o.Rate, warm, dur, o.Deadline, o.MaxInFlight, rec, onMeasure)
	}
	evCancel()
	<-evDone

	rec.mu.Lock()
	qps := float64(rec.all) / dur.Seconds()
	rec.mu.Unlock()
	c := &cell{rec: rec, markers: markers, qps: []float64{qps}}
	for _, b := range e.backends {
		c.hits = append(c.hits, b.hits.Load())
		c.hitsNotOK += b.hitsNotOK.Load()
	}
	if s.zones != nil {
		c.zone = &zoneCell{zones: s.zones, phases: s.phases, dur: dur, bucket: o.Bucket}
		for _, b := range e.backends {
			var n []int64
			if sr := b.series.Load(); sr != nil {
				n = sr.counts()
			}
			c.zone.hits = append(c.zone.hits, n)
		}
	}
	return c, nil
}
