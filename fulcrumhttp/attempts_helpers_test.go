package fulcrumhttp_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// protos runs f for HTTP/1.1 and for HTTP/2 (h2c with prior knowledge).
func protos(t *testing.T, f func(t *testing.T, h2 bool)) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP1"
		if h2 {
			name = "HTTP2"
		}
		t.Run(name, func(t *testing.T) { f(t, h2) })
	}
}

// newProtoBackend starts a backend that also speaks h2c when h2 is set;
// setup runs before the server starts (to set its handler or ConnState).
func newProtoBackend(t *testing.T, id string, h2 bool, setup ...func(*backend)) *backend {
	t.Helper()
	b := &backend{id: id, release: make(chan struct{})}
	b.srv = httptest.NewUnstartedServer(b)
	for _, f := range setup {
		f(b)
	}
	if h2 {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		b.srv.Config.Protocols = p
	}
	b.srv.Start()
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.stop)
	return b
}

// h2cConfig adds "h2c":true to the JSON object cfg when h2 is set.
func h2cConfig(cfg string, h2 bool) string {
	if !h2 {
		return cfg
	}
	if cfg == "{}" || cfg == "" {
		return `{"h2c":true}`
	}
	return `{"h2c":true,` + cfg[1:]
}

// refusedAddr returns a 127.0.0.1 address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// connCounter counts a server's open connections.
type connCounter struct {
	mu   sync.Mutex
	open map[net.Conn]bool
}

// countConns counts b's connections; call it in newProtoBackend's setup.
func countConns(c *connCounter) func(*backend) {
	c.open = map[net.Conn]bool{}
	return func(b *backend) { b.srv.Config.ConnState = c.track }
}

func (c *connCounter) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch st {
	case http.StateNew:
		c.open[conn] = true
	case http.StateClosed, http.StateHijacked:
		delete(c.open, conn)
	}
}

func (c *connCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
