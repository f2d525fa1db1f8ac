package fulcrumhttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// pool is one endpoint's connection pool: Fulcrum's *http.Transport,
// whose every dial goes to the endpoint's addresses whatever host the
// request URL names, the RoundTripper attempts go through (that transport,
// or the WithEndpointWrapper function's wrapping of it), and the
// endpoint's Retry-After hold.
type pool struct {
	// Read-only after newPool.
	tr   *http.Transport
	rt   http.RoundTripper
	now  func() time.Time
	addr string

	// holdUntil is when a Retry-After hold ends, in Unix nanoseconds;
	// 0 = none. Read on every pick, so lock-free.
	holdUntil atomic.Int64
	// gone is set when the endpoint leaves the set or the Transport
	// closes: connections still busy then are closed when their request
	// ends instead of idling until idleConnTimeout (an HTTP/2 connection
	// has a read-loop goroutine for as long as it is open).
	gone atomic.Bool
}

// RoundTrip sends req over Fulcrum's transport, without the wrapper: the
// prober's path.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) { return p.tr.RoundTrip(req) }

// retire closes the idle connections now and the busy ones as their
// requests end (see attempt.finish).
func (p *pool) retire() {
	p.gone.Store(true)
	p.tr.CloseIdleConnections()
}

// hold keeps the endpoint out of rotation for d unless no other endpoint
// is usable (see selection.pick); it reports whether it started a hold.
func (p *pool) hold(d time.Duration) bool {
	until := p.now().Add(d).UnixNano()
	for {
		cur := p.holdUntil.Load()
		if cur >= until {
			return false
		}
		if p.holdUntil.CompareAndSwap(cur, until) {
			return cur == 0 || cur < p.now().UnixNano()
		}
	}
}

// held returns when the endpoint's hold ends, or the zero time if none is
// in force.
func (p *pool) held() time.Time {
	u := p.holdUntil.Load()
	if u == 0 {
		return time.Time{}
	}
	t := time.Unix(0, u)
	if !p.now().Before(t) {
		p.holdUntil.CompareAndSwap(u, 0) // over: picks stop asking the clock
		return time.Time{}
	}
	return t
}

// newPool returns the connection pool of one endpoint: a clone of the
// template whose every dial (and TLS dial, when the template has its own)
// goes to the endpoint's addresses. The request keeps its logical URL, so
// net/http sends the logical Host header and verifies the TLS certificate
// against the logical name (ServerName) while the TCP connection goes to
// the instance.
func (t *Transport) newPool(addrs []string) *pool {
	cfg, tmpl := t.cfg, t.template
	tr := tmpl.Clone()
	tr.Proxy = nil // the instance is dialled directly; a proxy would see the logical host
	addrs = slices.Clone(addrs)
	dial := tmpl.DialContext
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	tr.DialContext = toEndpoint(addrs, dial)
	if tmpl.DialTLSContext != nil {
		// The template's own TLS dialler is kept, called with the
		// instance's address: it must set its tls.Config.ServerName
		// itself (net/http does not for a custom DialTLSContext).
		tr.DialTLSContext = toEndpoint(addrs, tmpl.DialTLSContext)
	}
	if t.tlsConfig != nil {
		tr.TLSClientConfig = t.tlsConfig.Clone()
	}
	tr.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerEndpoint
	tr.MaxIdleConns = 0 // no total cap: one pool per endpoint
	tr.IdleConnTimeout = time.Duration(cfg.IdleConnTimeout)
	tr.ForceAttemptHTTP2 = t.cfg.HTTP2
	p := new(http.Protocols)
	switch {
	case cfg.H2C:
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
	case !t.cfg.HTTP2:
		p.SetHTTP1(true) // http2: false: HTTP/1.1 over TLS too
	default:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	tr.Protocols = p
	pl := &pool{tr: tr, rt: tr, now: t.clk.Now, addr: addrs[0]}
	if t.wrap != nil {
		if rt := t.wrap(addrs[0], tr); rt != nil {
			pl.rt = rt
		}
	}
	return pl
}

// toEndpoint returns a dial function that ignores the address net/http
// asks for (the logical host) and connects to the endpoint's addresses in
// order, as pick_first does for a dual-stack endpoint.
func toEndpoint(addrs []string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var errs []error
		for _, a := range addrs {
			c, err := dial(ctx, network, a)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, &dialError{errors.Join(errs...)}
	}
}

// defaultTemplate is the transport cloned per endpoint unless
// WithEndpointTransport gives another: http.DefaultTransport's timeouts.
func defaultTemplate() *http.Transport {
	return &http.Transport{
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// dialError marks a failure to connect to the endpoint (its text says
// "dial"); whether a request may go elsewhere is decided by whether it was
// written (see attempt.go), which covers this and more.
type dialError struct{ err error }

func (e *dialError) Error() string { return fmt.Sprintf("dial: %v", e.err) }
func (e *dialError) Unwrap() error { return e.err }

// Outcomes of attempts, for the breaker and the latency estimate.
var (
	// A connection error or a failure status: counts against the
	// endpoint; a fast failure says nothing about its speed.
	failed = picker.Outcome{Verdict: picker.Failure, Timing: picker.Untimed}
	// An answer from a working server (4xx included).
	answered = picker.Outcome{Verdict: picker.Success, Timing: picker.Timed}
	// The caller cancelled or its deadline passed: nothing learnt about
	// health, and the endpoint took at least this long.
	cutShort = picker.Outcome{Verdict: picker.NoVerdict, Timing: picker.LowerBound}
)

// classifyErr classifies an attempt that got no response. ctx is the
// request's context: an error after the caller cancelled or timed out is
// the caller's, not the endpoint's.
func classifyErr(ctx context.Context, err error) picker.Outcome {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return cutShort
	}
	return failed
}

// classifyStatus classifies a response by its status: a listed failure
// status is a failure, anything else (4xx included) is an answer from a
// working server.
func classifyStatus(code int, failures []int) picker.Outcome {
	if slices.Contains(failures, code) {
		return failed
	}
	return answered
}
