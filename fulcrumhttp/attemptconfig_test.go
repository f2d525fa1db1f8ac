package fulcrumhttp

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseAttemptConfig(t *testing.T) {
	c, rest, err := parseAttemptConfig(`{"http2":false,"retry":{"perTryTimeout":"250ms","maxAttempts":3},"breaker":{"retryAfterStatuses":[429,503],"enabled":false}}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP2 || c.PerTryTimeout != 250*time.Millisecond || !slices.Equal(c.RetryAfterStatuses, []int{429, 503}) {
		t.Errorf("parsed %+v", c)
	}
	cfg, err := parseConfig(rest)
	if err != nil {
		t.Fatalf("the rest %s: %v", rest, err)
	}
	if cfg.Retry.MaxAttempts != 3 || cfg.LB.Breaker.Enabled {
		t.Errorf("the other fields were lost: %s", rest)
	}
	if d, _, _ := parseAttemptConfig(""); !d.HTTP2 || d.PerTryTimeout != 0 || !slices.Equal(d.RetryAfterStatuses, []int{503}) {
		t.Errorf("defaults %+v", d)
	}
}

func TestParseAttemptConfig_Errors(t *testing.T) {
	for _, tc := range []struct{ js, want string }{
		{`{"retry":{"perTryTimeout":5}}`, `fulcrumhttp: retry.perTryTimeout: 5, must be a duration string like "2s"`},
		{`{"retry":{"perTryTimeout":"soon"}}`, `fulcrumhttp: retry.perTryTimeout: "soon", must be a duration string like "5s"`},
		{`{"retry":{"perTryTimeout":"1h"}}`, `fulcrumhttp: retry.perTryTimeout: 1h0m0s, must be 0 (off) or in [1ms, 10m0s]`},
		{`{"breaker":{"retryAfterStatuses":[404]}}`, `fulcrumhttp: breaker.retryAfterStatuses[0]: 404, must be 429 or a 5xx status in [500, 599]`},
		{`{"http2":"no"}`, `fulcrumhttp: http2: "no", must be true or false`},
		{`{"h2c":true,"http2":false}`, `fulcrumhttp: http2: false, must be true when h2c is true`},
	} {
		c, rest, err := parseAttemptConfig(tc.js)
		if err == nil {
			cfg, perr := parseConfig(rest)
			if perr != nil {
				t.Fatalf("%s: %v", tc.js, perr)
			}
			err = c.validate(cfg.H2C)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.js, err, tc.want)
		}
	}
}

func TestIdempotent(t *testing.T) {
	for _, tc := range []struct {
		method string
		hdr    http.Header
		want   bool
	}{
		{http.MethodGet, nil, true},
		{http.MethodPut, nil, true},
		{http.MethodPost, nil, false},
		{http.MethodPatch, nil, false},
		{http.MethodPost, http.Header{"Idempotency-Key": {"k"}}, true},
		{http.MethodPost, http.Header{"X-Idempotency-Key": {"k"}}, true},
		{http.MethodPost, http.Header{"Idempotency-Key": nil}, true}, // net/http: marker, not sent
		{http.MethodPost, http.Header{"X-Idempotency-Key": nil}, true},
	} {
		req, _ := http.NewRequest(tc.method, "http://svc/", nil)
		req.Header = tc.hdr
		if got := idempotent(req); got != tc.want {
			t.Errorf("idempotent(%s, %v) = %v, want %v", tc.method, tc.hdr, got, tc.want)
		}
	}
}
