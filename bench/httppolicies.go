package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bufbuild/httplb"
	"github.com/bufbuild/httplb/health"
	"github.com/bufbuild/httplb/picker"
	"github.com/bufbuild/httplb/resolver"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// httpService is the logical host every HTTP policy is asked for; each
// policy maps it to the fleet's instances its own way.
const httpService = "fleet"

// httpWorkURL is the request every HTTP scenario sends.
const httpWorkURL = "http://" + httpService + "/work"

// Health probing of the policies that probe: the interval, timeout,
// jitter and thresholds of Fulcrum's healthProbe defaults, given to
// httplb's polling checker too so that both notice a fault equally soon.
const (
	probeInterval  = 500 * time.Millisecond
	probeTimeout   = 250 * time.Millisecond
	probeJitter    = 0.2
	probeThreshold = 2 // unhealthy and healthy
	probePath      = "/healthz"
)

// idleConnsPerHost is the idle-connection pool of every policy's
// per-instance transport (fulcrumhttp's maxIdleConnsPerEndpoint default):
// with net/http's default of 2, HTTP/1.1 at a few hundred requests per
// second would spend its time dialling and filling TIME_WAIT.
const idleConnsPerHost = 64

// HTTPPolicy is one HTTP client configuration under test.
type HTTPPolicy struct {
	// Name labels the policy in tables and charts.
	Name string
	// About says how it is configured (shown in the report).
	About string
	// new builds a client for the fleet at addrs (weights: nil or one per
	// address).
	new func(addrs []string, weights []uint32) (*httpClient, error)
}

// httpClient is one policy's client for one run.
type httpClient struct {
	c     *http.Client
	close func()
}

// do sends one GET /work and reads the whole response; a status other
// than 200 is an httpStatusError.
func (h *httpClient) do(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpWorkURL, nil)
	if err != nil {
		return err
	}
	return h.send(req)
}

// post sends POST /work with a small body (rewindable: GetBody is set) and
// X-Req-Id id, without an Idempotency-Key.
func (h *httpClient) post(ctx context.Context, id uint64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpWorkURL, strings.NewReader(`{"op":"create"}`))
	if err != nil {
		return err
	}
	req.Header.Set("X-Req-Id", strconv.FormatUint(id, 10))
	return h.send(req)
}

func (h *httpClient) send(req *http.Request) error {
	resp, err := h.c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpStatusError(resp.StatusCode)
	}
	return err
}

// HTTPPolicies returns the HTTP policies compared by default.
func HTTPPolicies() []HTTPPolicy {
	return []HTTPPolicy{
		{
			Name:  "naive",
			About: "an http.RoundTripper rotating over the instance list (round robin, no health, no retries) on one http.Transport with MaxIdleConnsPerHost 64",
			new:   newNaiveClient,
		},
		{
			Name: "httplb",
			About: "github.com/bufbuild/httplb v0.4.1: picker.NewPowerOfTwo, health.NewPollingChecker on GET /healthz (interval 500ms, timeout 250ms, jitter 0.2, thresholds 2: " +
				"Fulcrum's probe defaults), a static resolver over the instances, HTTP/1.1 leaf transports with MaxIdleConnsPerHost 64 (httplb's own keeps 1)",
			new: newHTTPLBClient,
		},
		{
			Name: "fulcrum",
			About: "fulcrumhttp.NewTransport over fulcrum://static/<instances>, defaults + `" + fulcrumHTTPConfig + "`: weighted least-request (P2C, latency term), breaker on connection errors and 502/503/504, " +
				"probes every 500ms (timeout 250ms, thresholds 2), 2 attempts (any method when the first was never written, idempotent requests otherwise) within a 20% retry budget per host, 64 idle connections per instance",
			new: newFulcrumClient,
		},
	}
}

func pooledTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no overall limit
	t.MaxIdleConnsPerHost = idleConnsPerHost
	return t
}

// rotating is the naive client-side balancer: every request goes to the
// next instance of a fixed list, whatever happened to the previous ones.
type rotating struct {
	addrs []string
	next  atomic.Uint64
	base  *http.Transport
}

func (r *rotating) RoundTrip(req *http.Request) (*http.Response, error) {
	i := r.next.Add(1) - 1
	out := req.Clone(req.Context())
	if out.Host == "" {
		out.Host = req.URL.Host // the Host header stays logical
	}
	out.URL.Host = r.addrs[i%uint64(len(r.addrs))]
	return r.base.RoundTrip(out)
}

func newNaiveClient(addrs []string, _ []uint32) (*httpClient, error) {
	rt := &rotating{addrs: addrs, base: pooledTransport()}
	return &httpClient{c: &http.Client{Transport: rt}, close: rt.base.CloseIdleConnections}, nil
}

// staticResolver hands httplb a fixed address list for any name.
type staticResolver []string

func (s staticResolver) New(_ context.Context, _, _ string, rcv resolver.Receiver, _ <-chan struct{}) io.Closer {
	addrs := make([]resolver.Address, len(s))
	for i, a := range s {
		addrs[i] = resolver.Address{HostPort: a}
	}
	rcv.OnResolve(addrs)
	return io.NopCloser(nil)
}

// pooledLeaf is httplb's "http" leaf transport with a larger idle pool:
// httplb's default keeps one idle connection per instance, which suits
// HTTP/2 but makes HTTP/1.1 dial for almost every concurrent request.
type pooledLeaf struct{}

func (pooledLeaf) NewRoundTripper(_, _ string, c httplb.TransportConfig) httplb.RoundTripperResult {
	t := pooledTransport()
	t.DialContext = c.DialFunc
	t.IdleConnTimeout = c.IdleConnTimeout
	return httplb.RoundTripperResult{RoundTripper: t, Close: t.CloseIdleConnections}
}

func newHTTPLBClient(addrs []string, _ []uint32) (*httpClient, error) {
	checker := health.NewPollingChecker(health.PollingCheckerConfig{
		PollingInterval:    probeInterval,
		Jitter:             probeJitter,
		Timeout:            probeTimeout,
		HealthyThreshold:   probeThreshold,
		UnhealthyThreshold: probeThreshold,
	}, health.NewSimpleProber(probePath))
	c := httplb.NewClient(
		httplb.WithResolver(staticResolver(addrs)),
		httplb.WithPicker(picker.NewPowerOfTwo),
		httplb.WithHealthChecks(checker),
		httplb.WithTransport("http", pooledLeaf{}),
	)
	return &httpClient{c: c.Client, close: func() { _ = c.Close() }}, nil
}

// httpStatusError is a response whose status was not 200.
type httpStatusError int

func (e httpStatusError) Error() string { return fmt.Sprintf("HTTP status %d", int(e)) }

// httpCodeOf names a failed request's outcome for the error table.
func httpCodeOf(err error) string {
	var se httpStatusError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("HTTP_%d", int(se))
	case errors.Is(err, context.DeadlineExceeded):
		return "DEADLINE_EXCEEDED"
	case errors.Is(err, context.Canceled):
		return "CANCELLED"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "CONN_REFUSED"
	case errors.Is(err, syscall.ECONNRESET):
		return "CONN_RESET"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "CONN_CLOSED"
	case errors.Is(err, endpointset.ErrNoUsableEndpoint):
		return "NO_USABLE_ENDPOINT"
	case strings.Contains(err.Error(), "no healthy connections"):
		return "NO_HEALTHY_CONN" // httplb's error picker
	}
	return "OTHER"
}
