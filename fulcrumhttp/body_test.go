package fulcrumhttp

import (
	"errors"
	"io"
	"strings"
	"testing"
)

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestDoneBody_OnceOnEOFThenClose(t *testing.T) {
	var calls []error
	b := wrapBody(io.NopCloser(strings.NewReader("hello")), func(err error) { calls = append(calls, err) })
	if got, _ := io.ReadAll(b); string(got) != "hello" {
		t.Fatalf("body = %q", got)
	}
	if len(calls) != 1 || calls[0] != nil {
		t.Fatalf("after EOF: done calls %v, want exactly one nil", calls)
	}
	b.Close()
	b.Close()
	if len(calls) != 1 {
		t.Errorf("after Close: done calls %v, want still one", calls)
	}
}

func TestDoneBody_CloseBeforeEOF(t *testing.T) {
	var calls []error
	b := wrapBody(io.NopCloser(strings.NewReader("hello")), func(err error) { calls = append(calls, err) })
	b.Read(make([]byte, 2))
	if len(calls) != 0 {
		t.Fatalf("done called before the body ended: %v", calls)
	}
	b.Close()
	if len(calls) != 1 || calls[0] != nil {
		t.Errorf("done calls %v, want one nil", calls)
	}
}

func TestDoneBody_ReadError(t *testing.T) {
	boom := errors.New("connection reset")
	var calls []error
	b := wrapBody(io.NopCloser(errReader{boom}), func(err error) { calls = append(calls, err) })
	b.Read(make([]byte, 2))
	b.Close()
	if len(calls) != 1 || !errors.Is(calls[0], boom) {
		t.Errorf("done calls %v, want exactly one with %v", calls, boom)
	}
}

type rwc struct {
	io.Reader
	written []byte
}

func (r *rwc) Write(p []byte) (int, error) { r.written = append(r.written, p...); return len(p), nil }
func (r *rwc) Close() error                { return nil }

func TestDoneBody_KeepsWriterOfSwitchedProtocol(t *testing.T) {
	under := &rwc{Reader: strings.NewReader("")}
	b := wrapBody(under, func(error) {})
	w, ok := b.(io.Writer)
	if !ok {
		t.Fatal("wrapped 101 body lost its io.Writer")
	}
	w.Write([]byte("ping"))
	if string(under.written) != "ping" {
		t.Errorf("written = %q", under.written)
	}
}
