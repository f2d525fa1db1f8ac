package fulcrumhttp

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryable(t *testing.T) {
	body := func() io.Reader { return strings.NewReader("x") }
	for _, tc := range []struct {
		method string
		body   io.Reader
		key    bool
		noGet  bool
		want   bool
	}{
		{http.MethodGet, nil, false, false, true},
		{http.MethodHead, nil, false, false, true},
		{http.MethodOptions, nil, false, false, true},
		{http.MethodTrace, nil, false, false, true},
		{http.MethodDelete, nil, false, false, true},
		{http.MethodPut, body(), false, false, true},
		{http.MethodPut, body(), false, true, false}, // body cannot be rewound
		{http.MethodPost, body(), false, false, false},
		{http.MethodPatch, body(), false, false, false},
		{http.MethodPost, body(), true, false, true},
		{http.MethodPost, body(), true, true, false},
	} {
		req, _ := http.NewRequest(tc.method, "http://svc/", tc.body)
		if tc.key {
			req.Header.Set("Idempotency-Key", "k1")
		}
		if tc.noGet {
			req.GetBody = nil
		}
		if got := retryable(req); got != tc.want {
			t.Errorf("retryable(%s, body=%v, key=%v, noGetBody=%v) = %v, want %v", tc.method, tc.body != nil, tc.key, tc.noGet, got, tc.want)
		}
	}
}

func TestRewind_FreshBody(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPut, "http://svc/", bytes.NewReader([]byte("payload")))
	io.ReadAll(req.Body) // the first attempt consumed it
	out, err := rewind(req.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	if string(b) != "payload" {
		t.Errorf("rewound body = %q, want %q", b, "payload")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0, false},
		{"99999999999", 24 * time.Hour, true},
	} {
		got, ok := retryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}
