package fulcrumhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

func ExampleNewTransport() {
	// Two instances of "user-svc" on loopback.
	var addrs []string
	for _, name := range []string{"a", "b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "user 42 from instance %s, Host %s", name, r.Host)
		}))
		defer srv.Close()
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}

	t, err := fulcrumhttp.NewTransport(map[string]string{
		"user-svc": "fulcrum://static/" + strings.Join(addrs, ","),
	}, fulcrumhttp.WithConfig(`{"retry":{"maxAttempts":3}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()
	client := &http.Client{Transport: t}

	resp, err := client.Get("http://user-svc/users/42")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, strings.Contains(string(body), "Host user-svc"))
	// Output: 200 OK true
}
