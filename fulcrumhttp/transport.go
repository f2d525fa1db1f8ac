// Package fulcrumhttp balances HTTP requests with Fulcrum's engine: an
// http.RoundTripper that sends each request for a mapped host to one of the
// instances a fulcrum:// target resolves to.
//
//	t, err := fulcrumhttp.NewTransport(map[string]string{
//		"user-svc": "fulcrum://dns/user.internal:8080",
//	}, fulcrumhttp.WithConfig(`{"healthProbe":{"path":"/healthz"}}`))
//	defer t.Close()
//	client := &http.Client{Transport: t} // client.Get("http://user-svc/users/42")
//
// Resolution, selection (weighted least-request over in-flight requests),
// the circuit breaker and the probe verdicts are the code the
// weighted_least_request gRPC policy uses. fulcrumhttp owns what is HTTP:
// the host map, one connection pool per endpoint (the request keeps its
// logical URL, Host header and TLS server name; only the dial goes to the
// instance), in-flight accounting until the response body is closed or
// read to EOF, classification of responses (connection errors and
// 502/503/504 are breaker failures, 4xx never; a Retry-After on a 503 makes
// selection prefer other endpoints), HTTP health probes, and re-sending,
// on another endpoint and within each host's retry budget, of requests
// that were never written (any method) or are safe to repeat. Errors are
// *Error.
package fulcrumhttp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/metrics"
)

// Transport is an http.RoundTripper balancing requests for the hosts of its
// map. It is safe for concurrent use. Close it to stop resolution and
// probing.
type Transport struct {
	// Read-only after NewTransport.
	cfg            *config
	groups         map[string]*group // by lower-cased URL host
	base           http.RoundTripper
	unknownHostErr bool
	template       *http.Transport
	wrap           func(addr string, rt http.RoundTripper) http.RoundTripper
	tlsConfig      *tls.Config
	clk            clock.Clock
	rec            metrics.Recorder

	retries       atomic.Uint64
	retriesDenied atomic.Uint64
	closeOnce     sync.Once
	closed        atomic.Bool
}

// Option configures NewTransport.
type Option func(*options) error

type options struct {
	config         string
	base           http.RoundTripper
	unknownHostErr bool
	template       *http.Transport
	wrap           func(addr string, rt http.RoundTripper) http.RoundTripper
	tlsConfig      *tls.Config
	clk            clock.Clock
	rec            metrics.Recorder
}

// WithConfig sets the configuration as JSON: the fields of the
// weighted_least_request policy plus the HTTP-only ones (see README).
func WithConfig(js string) Option {
	return func(o *options) error { o.config = js; return nil }
}

// WithBase sets the RoundTripper of requests to hosts not in the map.
// Default http.DefaultTransport.
func WithBase(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("fulcrumhttp: WithBase: nil, must be an http.RoundTripper")
		}
		o.base = rt
		return nil
	}
}

// WithUnknownHostError makes requests to hosts not in the map fail instead
// of going to the base RoundTripper.
func WithUnknownHostError() Option {
	return func(o *options) error { o.unknownHostErr = true; return nil }
}

// WithTLSConfig sets the TLS configuration of https:// requests (roots,
// client certificates). Leave ServerName empty: it is the request's logical
// host, so the certificate is checked against the service's name, not the
// instance's address. It also makes health probes use https by default.
func WithTLSConfig(c *tls.Config) Option {
	return func(o *options) error { o.tlsConfig = c; return nil }
}

// WithEndpointTransport sets the transport cloned for each endpoint's
// connection pool (timeouts, dialer, TLS). Its Proxy, pool sizes and
// protocols are overridden; its DialContext and DialTLSContext are kept
// and called with the endpoint's address (a DialTLSContext must set
// ServerName itself). Default: http.DefaultTransport's timeouts. To wrap
// each attempt in another RoundTripper, use WithEndpointWrapper.
func WithEndpointTransport(t *http.Transport) Option {
	return func(o *options) error {
		if t == nil {
			return errors.New("fulcrumhttp: WithEndpointTransport: nil, must be an *http.Transport")
		}
		o.template = t
		return nil
	}
}

// WithEndpointWrapper wraps the RoundTripper of every endpoint: each
// attempt of a request goes through wrap's result, so that, for instance,
// otelhttp.NewTransport can trace every attempt:
//
//	fulcrumhttp.WithEndpointWrapper(func(addr string, rt http.RoundTripper) http.RoundTripper {
//		return otelhttp.NewTransport(rt)
//	})
//
// rt is the endpoint's own *http.Transport (its dial goes to addr); the
// wrapper must send through it. Health probes do not go through the
// wrapper.
func WithEndpointWrapper(wrap func(addr string, rt http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) error {
		if wrap == nil {
			return errors.New("fulcrumhttp: WithEndpointWrapper: nil, must be a function returning an http.RoundTripper")
		}
		o.wrap = wrap
		return nil
	}
}

// NewTransport returns a Transport sending requests for each host of hosts
// (a URL host as requests write it, "user-svc" or "user-svc:8080") to the
// endpoints of its fulcrum:// target. A malformed host or target or a bad
// config is an error; resolution starts at once, and requests sent before
// its first result wait for it within their context.
func NewTransport(hosts map[string]string, opts ...Option) (*Transport, error) {
	o := options{base: http.DefaultTransport, template: defaultTemplate(), rec: metrics.Nop}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	cfg, err := parseConfig(o.config)
	if err != nil {
		return nil, err
	}
	routes, err := parseRoutes(hosts)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:            cfg,
		groups:         make(map[string]*group, len(routes)),
		base:           o.base,
		unknownHostErr: o.unknownHostErr,
		template:       o.template,
		wrap:           o.wrap,
		tlsConfig:      o.tlsConfig,
		clk:            clock.OrReal(o.clk),
		rec:            o.rec,
	}
	for _, r := range routes {
		g := newGroup(t, r)
		// One budget per host: retries to a failing host never spend
		// another's.
		g.budget = hedge.NewBudget(cfg.Retry.BudgetPercent, cfg.Retry.MinRetriesPerSecond, t.clk.Now)
		if cfg.Hedging.Enabled {
			g.hedger = hedge.New(cfg.Hedging.Policy, hedge.Options{Clock: t.clk, Shared: g.budget})
			g.obs.Hedging(g.hedger)
		}
		if err := g.start(); err != nil {
			g.obs.Close()
			t.Close()
			return nil, err
		}
		t.groups[r.key] = g
	}
	return t, nil
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	g := t.group(req.URL)
	if g == nil {
		if t.unknownHostErr {
			closeReqBody(req)
			return nil, fmt.Errorf("fulcrumhttp: host %q: not in the transport's map, must be one of %s", req.URL.Host, strings.Join(t.hostNames(), ", "))
		}
		return t.base.RoundTrip(req)
	}
	if t.closed.Load() {
		closeReqBody(req)
		return nil, &Error{Host: g.route.key, Err: ErrClosed}
	}
	return g.roundTrip(req)
}

// group returns the host of u: its host as written, else the same host
// with or without the scheme's default port ("svc" matches
// http://svc:80/, "svc:443" matches https://svc/).
func (t *Transport) group(u *url.URL) *group {
	host := strings.ToLower(u.Host)
	if g := t.groups[host]; g != nil {
		return g
	}
	def := map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	if def == "" {
		return nil
	}
	if h, p, err := net.SplitHostPort(host); err == nil {
		if p != def {
			return nil
		}
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		return t.groups[h]
	}
	return t.groups[net.JoinHostPort(strings.Trim(host, "[]"), def)]
}

func (t *Transport) hostNames() []string {
	var names []string
	for k := range t.groups {
		names = append(names, fmt.Sprintf("%q", k))
	}
	slices.Sort(names)
	return names
}

func closeReqBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// Close stops resolution and probing and closes idle connections. Requests
// in flight finish; new ones fail with ErrClosed. It returns once every
// goroutine of the Transport has exited.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		for _, g := range t.groups {
			g.shutdown()
		}
	})
	return nil
}

// CloseIdleConnections closes the idle connections of every endpoint's
// pool, and of the base RoundTripper given with WithBase (never those of
// the process-wide http.DefaultTransport); http.Client.CloseIdleConnections
// calls it.
func (t *Transport) CloseIdleConnections() {
	for _, g := range t.groups {
		g.mu.Lock()
		for _, ep := range g.eps {
			ep.rt.tr.CloseIdleConnections()
		}
		g.mu.Unlock()
	}
	if t.base == http.DefaultTransport {
		return
	}
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
