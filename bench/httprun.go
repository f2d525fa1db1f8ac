package bench

import (
	"context"
	"fmt"
	rand "math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// HTTPOptions configure an HTTP benchmark run: Options (Scenarios and
// Policies name HTTPScenarioNames and HTTPPolicyNames; Workers is unused)
// plus the number of rounds.
type HTTPOptions struct {
	Options
	// Rounds is how many times every scenario x policy runs, each time
	// on a fresh fleet and client for Warmup + Duration; a cell of the
	// report merges its rounds. Rounds interleave all scenarios and
	// policies (policy order reversed every other round), so drift in
	// the load of a shared machine hits every cell alike. 0 means 1.
	Rounds int
}

// DefaultHTTPOptions returns the options of the full HTTP benchmark.
func DefaultHTTPOptions() HTTPOptions {
	return HTTPOptions{Options: DefaultOptions(), Rounds: 3}
}

// RunHTTP runs the selected HTTP scenarios for the selected HTTP policies
// and writes http-bench-results.md, http-bench-results.json and the
// http-*.png charts to o.OutDir.
//
// The load and the measurement are the gRPC benchmark's: open-loop
// Poisson arrivals at o.Rate (the same sequence for every policy), latency
// from the scheduled arrival into an HDR histogram, every request under
// o.Deadline, shares counted by the servers.
func RunHTTP(ctx context.Context, o HTTPOptions) (*HTTPReport, error) {
	o.fill()
	o.Rounds = max(o.Rounds, 1)
	scs, err := selectHTTPScenarios(o.Scenarios)
	if err != nil {
		return nil, err
	}
	pols, err := selectHTTPPolicies(o.Policies)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	rep := &HTTPReport{
		Command:    o.Command,
		Date:       time.Now().UTC().Format(time.RFC3339),
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU:     runtime.NumCPU(),
		Commit:     o.Commit,
		Duration:   o.Duration.String(),
		Warmup:     o.Warmup.String(),
		Rounds:     o.Rounds,
		Rate:       o.Rate,
		Deadline:   o.Deadline.String(),
		LoadAvg:    [2]string{loadAvg(), ""},
	}
	for _, p := range pols {
		rep.Policies = append(rep.Policies, PolicyInfo{Name: p.Name, About: p.About})
	}
	cells := make([][]*cell, len(scs))
	for si := range scs {
		cells[si] = make([]*cell, len(pols))
	}
	for round := range o.Rounds {
		for si, s := range scs {
			for k := range pols {
				j := k
				if round%2 == 1 {
					j = len(pols) - 1 - k
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				c, err := runHTTPOne(ctx, o.Options, s, pols[j], uint64(si)<<8|uint64(round))
				if err != nil {
					return nil, fmt.Errorf("bench: http %s/%s: %w", s.name, pols[j].Name, err)
				}
				fmt.Fprintf(o.Log, "round %d/%d: http %-13s %-8s %s\n", round+1, o.Rounds, s.name, pols[j].Name, c.summary())
				if cells[si][j] == nil {
					cells[si][j] = c
				} else {
					cells[si][j].merge(c)
				}
			}
		}
	}
	for si, s := range scs {
		sr := ScenarioResult{Name: s.name, Title: s.title, Models: s.models, Notes: s.notes, Fault: s.fault, Weights: s.weights}
		for j, p := range pols {
			res := cells[si][j].result(p.Name, time.Duration(o.Rounds)*o.Duration)
			sr.Markers = cells[si][j].markers
			sr.Results = append(sr.Results, res)
			fmt.Fprintf(o.Log, "http %-13s %-8s qps=%6.1f ok=%7.3f%% p50=%6.2fms p99=%7.2fms p99.9=%7.2fms errors=%v shares=%v\n",
				s.name, p.Name, res.QPS, res.SuccessPct, res.P50, res.P99, res.P999, res.Errors, fmtShares(res.Shares))
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	rep.LoadAvg[1] = loadAvg()
	rep.Targets = evaluateHTTPTargets(rep)
	if err := rep.write(o.OutDir); err != nil {
		return nil, err
	}
	return rep, nil
}

// runHTTPOne runs scenario s under policy p on a fresh fleet and client:
// o.Warmup of unrecorded load, then o.Duration measured.
func runHTTPOne(ctx context.Context, o Options, s httpScenario, p HTTPPolicy, si uint64) (*cell, error) {
	var bs []*httpBackend
	defer func() {
		for _, b := range bs {
			b.close()
		}
	}()
	addrs := make([]string, s.n)
	for i := range s.n {
		b, err := newHTTPBackend(i, homogeneous(i))
		if err != nil {
			return nil, err
		}
		bs = append(bs, b)
		addrs[i] = b.addr
	}
	posts := new(postLog)
	for _, b := range bs {
		b.posts.Store(posts)
	}
	var evs []event
	if s.events != nil {
		evs = s.events(bs, o.Duration) // may also set standing conditions
	}
	var markers []Marker
	for _, ev := range evs {
		if ev.label != "" {
			markers = append(markers, Marker{T: ev.at.Seconds(), Label: ev.label})
		}
	}

	cli, err := p.new(addrs, s.weights)
	if err != nil {
		return nil, err
	}
	// Deferred after the backends' close, so it runs first: the client
	// stops probing before its servers go away.
	defer cli.close()

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
		for _, b := range bs {
			b.hits.Store(0)
		}
		measure <- time.Now()
	}

	rng := rand.New(rand.NewPCG(o.Seed, si))
	rec := newRecorder(time.Now().Add(o.Warmup), o.Duration, o.Bucket)
	rec.codeOf = httpCodeOf
	call := cli.do
	if s.post {
		var seq atomic.Uint64
		call = func(ctx context.Context) error { return cli.post(ctx, seq.Add(1)) }
	}
	openLoop(ctx, call, rng, o.Rate, o.Warmup, o.Duration, o.Deadline, o.MaxInFlight, rec, onMeasure)
	evCancel()
	<-evDone

	rec.mu.Lock()
	if d := posts.duplicates(); d > 0 {
		// Server-side, not a client failure: shown in the error table.
		rec.codes["DUPLICATE_POST"] += d
	}
	qps := float64(rec.all) / o.Duration.Seconds()
	p99 := float64(rec.hist.ValueAtQuantile(99)) / 1000
	rec.mu.Unlock()
	c := &cell{rec: rec, markers: markers, qps: []float64{qps}, p99s: []float64{p99}}
	for _, b := range bs {
		c.hits = append(c.hits, b.hits.Load())
	}
	return c, nil
}

// summary is a progress line's figures for one run.
func (c *cell) summary() string {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	pct := 0.0
	if c.rec.all > 0 {
		pct = 100 * float64(c.rec.ok) / float64(c.rec.all)
	}
	return fmt.Sprintf("ok=%7.3f%% of %d, p99=%7.2fms", pct, c.rec.all, float64(c.rec.hist.ValueAtQuantile(99))/1000)
}
