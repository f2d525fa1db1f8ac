package fulcrumhttp_test

import (
	"bufio"
	"io"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/fulcrum-lb/fulcrum/fulcrumhttp"
)

// noBodyHandler answers /empty with Content-Length 0, /nocontent with 204
// and anything else (HEAD /) with a 5-byte body.
var noBodyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/empty":
		w.Header().Set("Content-Length", "0")
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}
})

// TestTransport_NoBodyResponsesEndInFlight (issue 18, defect 7): a HEAD
// response, a Content-Length 0 response and a 204 have no body to wait
// for: the request is out of flight as soon as the response is returned,
// over HTTP/2 as over HTTP/1, even before the caller closes the body.
func TestTransport_NoBodyResponsesEndInFlight(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		b := newProtoBackend(t, "b", h2, func(b *backend) { b.srv.Config.Handler = noBodyHandler })
		tr := newTransport(t, map[string]string{"svc": "fulcrum://static/" + b.addr}, h2cConfig(`{}`, h2))
		for _, tc := range []struct{ method, path string }{{http.MethodHead, "/"}, {http.MethodGet, "/empty"}, {http.MethodGet, "/nocontent"}} {
			req, _ := http.NewRequest(tc.method, "http://svc"+tc.path, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
				t.Fatalf("HTTP/%d", resp.ProtoMajor)
			}
			waitFor(t, tc.method+" "+tc.path+" out of flight", func() bool {
				s, _ := endpointStats(tr, b.addr)
				return s.InFlight == 0
			})
			resp.Body.Close()
		}
	})
}

// streamingBackend answers one line, then the rest when release is closed.
func streamingBackend(t *testing.T, h2 bool, release chan struct{}, setup ...func(*backend)) *backend {
	stop := make(chan struct{})
	b := newProtoBackend(t, "stream", h2, append(setup, func(b *backend) {
		b.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-stop:
			}
			io.WriteString(w, "last\n")
		})
	})...)
	// Runs before the server's Close (cleanups run last first): a test
	// that fails before releasing the handler must not hang in Close.
	t.Cleanup(func() { close(stop) })
	return b
}

// TestTransport_CloseWithRequestInFlight (issue 18, defect 8): Close while
// a response is streaming lets it complete, and once it has, no goroutine
// of the Transport is left (an HTTP/2 connection's read loop included),
// whether the caller reads the body to EOF or closes it.
func TestTransport_CloseWithRequestInFlight(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		for _, readAll := range []bool{true, false} {
			release := make(chan struct{})
			b := streamingBackend(t, h2, release)
			ignore := goleak.IgnoreCurrent()
			tr, err := fulcrumhttp.NewTransport(map[string]string{"svc": "fulcrum://static/" + b.addr}, fulcrumhttp.WithConfig(h2cConfig(`{}`, h2)))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&http.Client{Transport: tr}).Get("http://svc/")
			if err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(resp.Body)
			if l, _ := r.ReadString('\n'); l != "first\n" {
				t.Fatalf("first line %q", l)
			}
			tr.Close()
			close(release)
			if readAll {
				if rest, err := io.ReadAll(r); err != nil || string(rest) != "last\n" {
					t.Errorf("rest of the stream after Close: %q, %v", rest, err)
				}
			}
			resp.Body.Close()
			goleak.VerifyNone(t, ignore)
		}
	})
}

// TestTransport_RemovedEndpointConnectionClosed (issue 18, defect 8): an
// endpoint removed while a response from it streams keeps that response;
// once it ends, the connection to the removed endpoint is closed (not
// left idle, with its HTTP/2 read loop, until idleConnTimeout).
func TestTransport_RemovedEndpointConnectionClosed(t *testing.T) {
	protos(t, func(t *testing.T, h2 bool) {
		release := make(chan struct{})
		conns := new(connCounter)
		old := streamingBackend(t, h2, release, countConns(conns))
		next := newProtoBackend(t, "next", h2)
		src, target := newPushSource()
		tr := newTransport(t, map[string]string{"svc": target}, h2cConfig(`{}`, h2))
		c := &http.Client{Transport: tr}
		src.push(t, []*backend{old})
		resp, err := c.Get("http://svc/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		r.ReadString('\n')
		src.push(t, []*backend{next})
		waitFor(t, "the old endpoint removed", func() bool { _, ok := endpointStats(tr, old.addr); return !ok })
		close(release)
		if rest, err := io.ReadAll(r); err != nil || string(rest) != "last\n" {
			t.Fatalf("stream from the removed endpoint: %q, %v", rest, err)
		}
		waitFor(t, "the removed endpoint's connection closed", func() bool { return conns.n() == 0 })
	})
}
