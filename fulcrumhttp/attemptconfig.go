package fulcrumhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// attemptConfig holds the fields that control each attempt of a request
// (issue 18). They live in the same JSON as the rest of the configuration;
// parseAttemptConfig takes them out before parseConfig sees it.
type attemptConfig struct {
	// PerTryTimeout bounds each attempt, from sending until the response
	// headers, and the drain of a retried response (JSON
	// retry.perTryTimeout). Default 0: off, only the request's context
	// bounds an attempt. Bounds 0 or [1ms, 10m].
	PerTryTimeout time.Duration
	// RetryAfterStatuses are the statuses whose Retry-After header holds
	// the endpoint (JSON breaker.retryAfterStatuses). Default [503]: a 429
	// is usually one caller's rate limit, not the endpoint's health. Each
	// must be 429 or in [500, 599].
	RetryAfterStatuses []int
	// HTTP2 allows HTTP/2 over TLS, negotiated by ALPN (JSON http2).
	// Default true; false sends HTTP/1.1 only. Must be true with h2c.
	HTTP2 bool
}

func defaultAttemptConfig() attemptConfig {
	return attemptConfig{RetryAfterStatuses: []int{503}, HTTP2: true}
}

// parseAttemptConfig takes the attempt fields out of js and returns them
// with the rest of the JSON. A malformed JSON is left for parseConfig to
// report.
func parseAttemptConfig(js string) (attemptConfig, string, error) {
	c := defaultAttemptConfig()
	var top map[string]json.RawMessage
	if len(bytes.TrimSpace([]byte(js))) == 0 || json.Unmarshal([]byte(js), &top) != nil || top == nil {
		return c, js, nil
	}
	// take removes key from the object at top[obj] ("" = top) and decodes
	// it into dst.
	take := func(obj, key, want string, dst any) error {
		m := top
		if obj != "" {
			m = nil
			if json.Unmarshal(top[obj], &m) != nil || m == nil {
				return nil // not an object: parseConfig says so
			}
		}
		raw, ok := m[key]
		if !ok {
			return nil
		}
		delete(m, key)
		if obj != "" {
			top[obj], _ = json.Marshal(m)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("fulcrumhttp: %s%s: %s, must be %s", prefix(obj), key, raw, want)
		}
		return nil
	}
	var perTry *string
	var statuses []int
	var h2 *bool
	if err := errors.Join(
		take("retry", "perTryTimeout", `a duration string like "2s"`, &perTry),
		take("breaker", "retryAfterStatuses", "a list of status codes", &statuses),
		take("", "http2", "true or false", &h2),
	); err != nil {
		return c, js, err
	}
	if err := duration("retry.perTryTimeout", perTry, &c.PerTryTimeout); err != nil {
		return c, js, err
	}
	if statuses != nil {
		c.RetryAfterStatuses = statuses
	}
	if h2 != nil {
		c.HTTP2 = *h2
	}
	rest, _ := json.Marshal(top)
	return c, string(rest), nil
}

func prefix(obj string) string {
	if obj == "" {
		return ""
	}
	return obj + "."
}

// validate checks the attempt fields, and http2 against h2c.
func (c attemptConfig) validate(h2c bool) error {
	var errs []error
	if d := c.PerTryTimeout; d != 0 && (d < time.Millisecond || d > 10*time.Minute) {
		errs = append(errs, fmt.Errorf("fulcrumhttp: retry.perTryTimeout: %v, must be 0 (off) or in [1ms, 10m0s]", d))
	}
	for i, s := range c.RetryAfterStatuses {
		if s != 429 && (s < 500 || s > 599) {
			errs = append(errs, fmt.Errorf("fulcrumhttp: breaker.retryAfterStatuses[%d]: %d, must be 429 or a 5xx status in [500, 599]", i, s))
		}
	}
	if !c.HTTP2 && h2c {
		errs = append(errs, errors.New("fulcrumhttp: http2: false, must be true when h2c is true"))
	}
	return errors.Join(errs...)
}

// withAttemptJSON adds the attempt fields to the fulcrumz view of the
// configuration.
func withAttemptJSON(js json.RawMessage, c attemptConfig) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(js, &m) != nil || m == nil {
		return js
	}
	m["http2"] = c.HTTP2
	if r, ok := m["retry"].(map[string]any); ok {
		r["perTryTimeout"] = c.PerTryTimeout.String()
	}
	if b, ok := m["breaker"].(map[string]any); ok {
		b["retryAfterStatuses"] = c.RetryAfterStatuses
	}
	out, err := json.Marshal(m)
	if err != nil {
		return js
	}
	return out
}
