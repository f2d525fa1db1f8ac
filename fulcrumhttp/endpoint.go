package fulcrumhttp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/fulcrum-lb/fulcrum/picker"
)

// newEndpointTransport returns the connection pool of one endpoint: a clone
// of tmpl whose every dial goes to the endpoint's addresses, whatever host
// the request URL names. The request keeps its logical URL, so net/http
// sends the logical Host header and verifies the TLS certificate against
// the logical name (ServerName) while the TCP connection goes to the
// instance.
func newEndpointTransport(tmpl *http.Transport, cfg *config, tlsCfg *tls.Config, addrs []string) *http.Transport {
	t := tmpl.Clone()
	t.Proxy = nil // the instance is dialled directly; a proxy would see the logical host
	addrs = slices.Clone(addrs)
	dial := tmpl.DialContext
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		// A dual-stack endpoint lists several addresses: try them in
		// order, as pick_first does.
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
	t.DialTLSContext = nil
	if tlsCfg != nil {
		t.TLSClientConfig = tlsCfg.Clone()
	}
	t.MaxIdleConnsPerHost = cfg.MaxIdleConnsPerEndpoint
	t.MaxIdleConns = 0 // no total cap: one pool per endpoint
	t.IdleConnTimeout = time.Duration(cfg.IdleConnTimeout)
	t.ForceAttemptHTTP2 = true
	p := new(http.Protocols)
	if cfg.H2C {
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	}
	t.Protocols = p
	return t
}

// defaultTemplate is the transport cloned per endpoint unless
// WithEndpointTransport gives another: http.DefaultTransport's timeouts.
func defaultTemplate() *http.Transport {
	return &http.Transport{
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// dialError marks a failure to connect: the request never reached the
// endpoint, so it is always safe to send it elsewhere.
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
