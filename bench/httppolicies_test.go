package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/fulcrum-lb/fulcrum/endpointset"
)

// TestRotating_SendsInTurnAndKeepsLogicalHost checks the naive policy:
// request i goes to instance i mod n, and the Host header stays the
// logical service name.
func TestRotating_SendsInTurnAndKeepsLogicalHost(t *testing.T) {
	var mu sync.Mutex
	var got []string // "server:host" per request, in order
	var addrs []string
	for i := range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%d:%s", i, r.Host))
			mu.Unlock()
		}))
		defer s.Close()
		addrs = append(addrs, s.Listener.Addr().String())
	}
	c, err := newNaiveClient(addrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for range 6 {
		if err := c.do(context.Background()); err != nil {
			t.Fatalf("do: %v", err)
		}
	}
	want := []string{"0:fleet", "1:fleet", "2:fleet", "0:fleet", "1:fleet", "2:fleet"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests went to %v, want %v", got, want)
	}
}

// TestHTTPCodeOf_NamesOutcomes checks the error table's names for the
// outcomes the scenarios produce.
func TestHTTPCodeOf_NamesOutcomes(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	lis.Close()
	_, refused := http.Get("http://" + closed + "/")
	if refused == nil {
		t.Fatalf("GET on closed port %s succeeded", closed)
	}
	urlErr := func(err error) error { return &url.Error{Op: "Get", URL: httpWorkURL, Err: err} }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{httpStatusError(503), "HTTP_503"},
		{urlErr(context.DeadlineExceeded), "DEADLINE_EXCEEDED"},
		{refused, "CONN_REFUSED"},
		{urlErr(fmt.Errorf("fulcrumhttp: %w", endpointset.ErrNoUsableEndpoint)), "NO_USABLE_ENDPOINT"},
		{fmt.Errorf("something else"), "OTHER"},
	} {
		if got := httpCodeOf(tc.err); got != tc.want {
			t.Errorf("httpCodeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
