// Command client sends the same requests to a fleet of HTTP backends twice:
// first the naive way (http.DefaultTransport, the next instance of the list
// for every request), then through fulcrumhttp. It prints both side by side
// and checks that fulcrumhttp kept the success rate up and the failing
// backend's share down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

var (
	target      = flag.String("target", "fulcrum://static/127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083,127.0.0.1:8084", "fulcrum://static target listing the backends")
	requests    = flag.Int("n", 2000, "requests per client")
	concurrency = flag.Int("concurrency", 8, "requests in flight at a time")
	reqTimeout  = flag.Duration("request-timeout", time.Second, "deadline of each request")
	minSuccess  = flag.Float64("min-success", 99, "lowest acceptable fulcrumhttp success rate, percent")
)

// service is the logical host the application writes in its URLs;
// fulcrumhttp maps it to the target.
const service = "user-svc"

// config turns on active health probing (HTTP has no standard health
// path, so it is off until one is named); everything else is default.
const config = `{"healthProbe":{"path":"/healthz"}}`

// result is one client's run.
type result struct {
	name     string
	attempts map[string]int64 // per backend address: requests sent to it, retries included
	failedAt map[string]int64 // per backend address: attempts that failed
	retries  int64
	ok, all  int64
	lat      []time.Duration // of successful requests
	elapsed  time.Duration
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
}

func run() error {
	addrs, err := parseStatic(*target)
	if err != nil {
		return err
	}
	fmt.Printf("Backends: %s\n", *target)
	fmt.Printf("Load: %d GET /work per client, %d at a time, %v deadline each\n\n", *requests, *concurrency, *reqTimeout)

	naive := naiveRun(addrs)
	fmt.Println(naive.line())
	fr, err := fulcrumRun(addrs)
	if err != nil {
		return err
	}
	fmt.Println(fr.line())
	fmt.Println()
	printTable(addrs, naive, fr)
	return verdict(addrs, naive, fr)
}

// naiveRun rotates over the instance list itself and sends each request
// with http.DefaultTransport: what an application without a balancer does.
func naiveRun(addrs []string) *result {
	r := newResult("naive", addrs)
	var next atomic.Int64
	var mu sync.Mutex
	r.load(func(ctx context.Context) (string, error) {
		addr := addrs[int(next.Add(1)-1)%len(addrs)]
		body, err := get(ctx, http.DefaultClient, "http://"+addr+"/work")
		mu.Lock()
		r.attempts[addr]++
		if err != nil {
			r.failedAt[addr]++
		}
		mu.Unlock()
		return body, err
	})
	return r
}

// fulcrumRun sends the same requests to http://user-svc/work through
// fulcrumhttp, which picks the instance, probes /healthz, ejects the
// failing one and retries a 503 on another instance.
func fulcrumRun(addrs []string) (*result, error) {
	t, err := fulcrumhttp.NewTransport(map[string]string{service: *target}, fulcrumhttp.WithConfig(config))
	if err != nil {
		return nil, err
	}
	defer t.Close()
	client := &http.Client{Transport: t}
	r := newResult("fulcrumhttp", addrs)
	r.load(func(ctx context.Context) (string, error) {
		return get(ctx, client, "http://"+service+"/work")
	})
	st := t.Stats()
	for _, ep := range st.Endpoints {
		r.attempts[ep.Addr] = int64(ep.Requests)
		r.failedAt[ep.Addr] = int64(ep.Failures)
	}
	r.retries = int64(st.Retries)
	return r, nil
}

func newResult(name string, addrs []string) *result {
	return &result{name: name, attempts: make(map[string]int64), failedAt: make(map[string]int64)}
}

// load sends *requests calls, *concurrency at a time, each under its own
// deadline, and records outcomes and latencies.
func (r *result) load(call func(context.Context) (string, error)) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	start := time.Now()
	for range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), *reqTimeout)
				t0 := time.Now()
				_, err := call(ctx)
				d := time.Since(t0)
				cancel()
				mu.Lock()
				r.all++
				if err == nil {
					r.ok++
					r.lat = append(r.lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	for range *requests {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	r.elapsed = time.Since(start)
	slices.Sort(r.lat)
}

// get fetches url and returns its body; a status other than 200 is an
// error.
func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(b)), nil
}

func (r *result) success() float64 {
	if r.all == 0 {
		return 0
	}
	return 100 * float64(r.ok) / float64(r.all)
}

func (r *result) share(addr string) float64 {
	var total int64
	for _, n := range r.attempts {
		total += n
	}
	if total == 0 {
		return 0
	}
	return 100 * float64(r.attempts[addr]) / float64(total)
}

func (r *result) pct(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))]
}

func (r *result) line() string {
	return fmt.Sprintf("%-12s %5d requests  %7.2f%% ok  %5.1fs", r.name, r.all, r.success(), r.elapsed.Seconds())
}

func printTable(addrs []string, a, b *result) {
	row := func(label, x, y string) { fmt.Printf("%-24s %12s %14s\n", label, x, y) }
	row("", a.name, b.name)
	fmt.Println("attempts per backend")
	for _, addr := range addrs {
		row("  "+addr, fmt.Sprintf("%.1f%%", a.share(addr)), fmt.Sprintf("%.1f%%", b.share(addr)))
	}
	row("requests", fmt.Sprint(a.all), fmt.Sprint(b.all))
	row("success", fmt.Sprintf("%.2f%%", a.success()), fmt.Sprintf("%.2f%%", b.success()))
	row("failed attempts", fmt.Sprint(sum(a.failedAt)), fmt.Sprint(sum(b.failedAt)))
	row("retries", "-", fmt.Sprint(b.retries))
	fmt.Println("latency of successful requests")
	row("  p50", ms(a.pct(0.50)), ms(b.pct(0.50)))
	row("  p99", ms(a.pct(0.99)), ms(b.pct(0.99)))
	fmt.Println()
}

// verdict checks the claim of the example: fulcrumhttp keeps success at
// -min-success or above and sends the failing backend a smaller share than
// the naive client did. The failing backend is the one whose attempts
// failed most under the naive client; with none, there is nothing to show.
func verdict(addrs []string, naive, fr *result) error {
	bad := ""
	for _, addr := range addrs {
		if naive.failedAt[addr] > 0 && (bad == "" || naive.failedAt[addr] > naive.failedAt[bad]) {
			bad = addr
		}
	}
	if bad == "" {
		return errors.New("no backend failed under the naive client, so there is nothing to compare (start the server with -fail N)")
	}
	if fr.success() < *minSuccess {
		return fmt.Errorf("fulcrumhttp success %.2f%% is below -min-success %.2f%% (naive: %.2f%%)", fr.success(), *minSuccess, naive.success())
	}
	if fr.share(bad) >= naive.share(bad) {
		return fmt.Errorf("the failing backend %s got %.1f%% of fulcrumhttp's attempts, not less than the naive client's %.1f%%", bad, fr.share(bad), naive.share(bad))
	}
	fmt.Printf("OK: fulcrumhttp %.2f%% success vs %.2f%% naive; the failing backend %s got %.1f%% of attempts vs %.1f%%; p99 %s vs %s\n",
		fr.success(), naive.success(), bad, fr.share(bad), naive.share(bad), ms(fr.pct(0.99)), ms(naive.pct(0.99)))
	return nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

// parseStatic returns the addresses of a fulcrum://static target (weights,
// if any, are dropped: the naive client has no use for them).
func parseStatic(t string) ([]string, error) {
	const prefix = "fulcrum://static/"
	if !strings.HasPrefix(t, prefix) {
		return nil, fmt.Errorf("target: %q, must start with %q (the naive client needs the list)", t, prefix)
	}
	var addrs []string
	for _, e := range strings.Split(strings.TrimPrefix(t, prefix), ",") {
		addr, _, _ := strings.Cut(e, "=")
		if addr == "" {
			return nil, fmt.Errorf("target: %q: empty entry, must be host:port[=weight],...", t)
		}
		addrs = append(addrs, addr)
	}
	return addrs, nil
}
