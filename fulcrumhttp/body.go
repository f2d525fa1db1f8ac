package fulcrumhttp

import (
	"errors"
	"io"
	"sync"
)

// doneBody wraps a response body so that the request stays in flight until
// the body is read to EOF, fails, or is closed, and reports which of those
// happened exactly once. A streamed body is in flight for as long as the
// caller holds it open.
type doneBody struct {
	rc   io.ReadCloser
	once sync.Once
	// done receives nil for EOF or Close, or the read error.
	done func(err error)
}

func newDoneBody(rc io.ReadCloser, done func(err error)) *doneBody {
	return &doneBody{rc: rc, done: done}
}

func (b *doneBody) finish(err error) { b.once.Do(func() { b.done(err) }) }

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.finish(nil)
	default:
		b.finish(err)
	}
	return n, err
}

// Close ends the request: closing a body before EOF is the caller's choice
// (it has what it wanted), not a failure of the endpoint.
func (b *doneBody) Close() error {
	err := b.rc.Close()
	b.finish(nil)
	return err
}

// doneWriteBody is a doneBody whose underlying body is also an io.Writer:
// net/http gives a 101 Switching Protocols response such a body, and callers
// type-assert it.
type doneWriteBody struct {
	*doneBody
	w io.Writer
}

func (b doneWriteBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// wrapBody returns rc wrapped so that done runs once when it ends, keeping
// the io.Writer of a protocol-switch body.
func wrapBody(rc io.ReadCloser, done func(err error)) io.ReadCloser {
	db := newDoneBody(rc, done)
	if w, ok := rc.(io.ReadWriteCloser); ok {
		return doneWriteBody{db, w}
	}
	return db
}
