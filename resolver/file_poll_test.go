package resolver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The file source skips the read when mtime and size are unchanged and the
// file was older than 2s at the last read; a file modified within 2s of the
// read is re-read on every poll (a same-size write could hide behind an
// unchanged mtime). Writes keep the size and put the mtime back with
// os.Chtimes, so only a re-read can see them; the clock is fake, and a poll
// has finished when the watcher has armed its next timer.
func TestFileWatcher_SkipsReadWhenStatUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eps.json")
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	write := func(port string) {
		t.Helper()
		require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:`+port+`"]}]}`), 0o644))
		require.NoError(t, os.Chtimes(path, mtime, mtime))
	}
	clk := newFakeClock()
	clk.set(mtime.Add(time.Second)) // written 1s ago: racy
	write("5001")
	ch, resolveNow := watchUpdates(t, &fileSource{clk: clk}, path+"?interval=1h")
	u := nextUpdate(t, ch)
	require.NoError(t, u.Err)
	assert.Equal(t, "127.0.0.1:5001", u.Endpoints[0].Addresses[0])
	clk.waitCreated(t, 1)

	// Racy: the same-size write behind an unchanged mtime is seen.
	write("5002")
	resolveNow()
	u = nextUpdate(t, ch)
	assert.Equal(t, "127.0.0.1:5002", u.Endpoints[0].Addresses[0], "a file modified within 2s must be re-read")
	clk.waitCreated(t, 2)

	// 2s after the mtime the file is still re-read (the window is
	// inclusive); the content is the same, so nothing is reported.
	clk.set(mtime.Add(2 * time.Second))
	resolveNow()
	clk.waitCreated(t, 3)
	write("5003")
	resolveNow()
	u = nextUpdate(t, ch)
	assert.Equal(t, "127.0.0.1:5003", u.Endpoints[0].Addresses[0], "a file modified exactly 2s before the read must be re-read")
	clk.waitCreated(t, 4)

	// Read more than 2s after its mtime: no longer racy.
	clk.set(mtime.Add(2*time.Second + time.Nanosecond))
	resolveNow()
	clk.waitCreated(t, 5)
	write("5004") // same size, same mtime: not read
	resolveNow()
	clk.waitCreated(t, 6)
	noUpdate(t, ch)

	// Any change of mtime makes it read again.
	later := mtime.Add(time.Millisecond)
	require.NoError(t, os.Chtimes(path, later, later))
	resolveNow()
	u = nextUpdate(t, ch)
	assert.Equal(t, "127.0.0.1:5004", u.Endpoints[0].Addresses[0])
	clk.waitCreated(t, 7)

	// And so does a change of size alone.
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:50050"]}]}`), 0o644))
	require.NoError(t, os.Chtimes(path, later, later))
	resolveNow()
	u = nextUpdate(t, ch)
	assert.Equal(t, "127.0.0.1:50050", u.Endpoints[0].Addresses[0])
}

// The file source polls every interval (1s by default) on its clock.
func TestFileWatcher_PollsEveryInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eps.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:5001"]}]}`), 0o644))
	clk := newFakeClock()
	ch, _ := watchUpdates(t, &fileSource{clk: clk}, path)
	require.NoError(t, nextUpdate(t, ch).Err)
	assert.Equal(t, []time.Duration{time.Second}, clk.waitTimers(t, 1), "default interval")
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:5002"]}]}`), 0o644))
	clk.Advance(time.Second)
	assert.Equal(t, "127.0.0.1:5002", nextUpdate(t, ch).Endpoints[0].Addresses[0])
}

// A file of 16 MiB is read (its content is then judged); one byte more is
// rejected by size, reported once however often it is polled. The big files
// are sparse runs of zero bytes (cheap to write, and not JSON, so that the
// test does not spend its time parsing).
func TestFileWatcher_SizeLimit(t *testing.T) {
	const limit = 16 << 20
	path := filepath.Join(t.TempDir(), "eps.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:5001"]}]}`), 0o644))
	clk := newFakeClock()
	ch, resolveNow := watchUpdates(t, &fileSource{clk: clk}, path)
	require.NoError(t, nextUpdate(t, ch).Err)

	sparse := func(size int64) {
		t.Helper()
		require.NoError(t, os.WriteFile(path, nil, 0o644))
		require.NoError(t, os.Truncate(path, size))
	}
	sparse(limit)
	resolveNow()
	u := nextUpdate(t, ch)
	require.Error(t, u.Err)
	assert.Contains(t, u.Err.Error(), "content: invalid JSON at byte 1", "exactly 16 MiB is read")

	sparse(limit + 1)
	resolveNow()
	u = nextUpdate(t, ch)
	require.Error(t, u.Err)
	assert.True(t, strings.HasSuffix(u.Err.Error(), "size: more than 16777216 bytes, must be at most 16777216"), u.Err.Error())
	clk.waitCreated(t, 3)
	resolveNow()
	clk.waitCreated(t, 4)
	noUpdate(t, ch)
}
