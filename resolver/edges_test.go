package resolver

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// A file that disappears and comes back with the same content is reported
// again (the error must end), and a second disappearance is reported again.
func TestFileWatcher_FileRemovedAndRestored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eps.json")
	content := `{"endpoints":[{"addresses":["127.0.0.1:5001"]}]}`
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	clk := newFakeClock()
	ch, resolveNow := watchUpdates(t, &fileSource{clk: clk}, path)
	require.NoError(t, nextUpdate(t, ch).Err)
	for range 2 {
		require.NoError(t, os.Remove(path))
		resolveNow()
		u := nextUpdate(t, ch)
		require.Error(t, u.Err)
		assert.True(t, os.IsNotExist(errorsUnwrapAll(u.Err)), "%v", u.Err)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
		resolveNow()
		u = nextUpdate(t, ch)
		require.NoError(t, u.Err, "the same content, back after an error, is reported")
		assert.Equal(t, "127.0.0.1:5001", u.Endpoints[0].Addresses[0])
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestTruncate(t *testing.T) {
	s60 := strings.Repeat("a", 60)
	assert.Equal(t, s60, truncate(json.RawMessage(s60)))
	assert.Equal(t, s60+"...", truncate(json.RawMessage(s60+"b")))
	assert.Equal(t, "missing", truncate(nil))
}

// blockingResolver blocks every lookup until its context is done.
type blockingResolver struct{ entered chan struct{} }

func (r *blockingResolver) LookupIPAddr(ctx context.Context, _ string) ([]net.IPAddr, error) {
	r.entered <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (r *blockingResolver) LookupSRV(ctx context.Context, _, _, _ string) (string, []*net.SRV, error) {
	r.entered <- struct{}{}
	<-ctx.Done()
	return "", nil, ctx.Err()
}

// A lookup cut short by stop is not reported: the watch is over.
func TestDNS_LookupCancelledByStopIsNotReported(t *testing.T) {
	for _, name := range []string{"h.test:1", "_grpc._tcp.h.test?srv=true"} {
		res := &blockingResolver{entered: make(chan struct{}, 1)}
		var reported []Update
		_, stop, err := (&dnsSource{res: res, clk: newFakeClock()}).Watch(context.Background(), name, func(u Update) { reported = append(reported, u) })
		require.NoError(t, err)
		<-res.entered
		stop()
		assert.Empty(t, reported, name)
	}
}

func TestParseDNSName(t *testing.T) {
	for _, tt := range []struct {
		name    string
		want    dnsConfig
		wantErr string
	}{
		{name: "h.test:80", want: dnsConfig{host: "h.test", port: "80", interval: dnsDefaultInterval}},
		{name: "h.test:80?srv=false", want: dnsConfig{host: "h.test", port: "80", interval: dnsDefaultInterval}},
		{name: "_grpc._tcp.h.test?srv", want: dnsConfig{host: "_grpc._tcp.h.test", srv: true, interval: dnsDefaultInterval}},
		{name: "h.test:80?a=%zz", wantErr: `query: "a=%zz"`},
		{name: "?srv=true", wantErr: `srv name: "", must be a DNS name without a port`},
		{name: "h.test:80?srv=1&interval=2s", wantErr: `srv name: "h.test:80"`},
	} {
		got, err := parseDNSName(tt.name)
		if tt.wantErr != "" {
			assert.ErrorContains(t, err, tt.wantErr, tt.name)
			continue
		}
		require.NoError(t, err, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
}

func TestValidSourceName(t *testing.T) {
	for _, ok := range []string{"a", "z", "0", "9", "-", ".", "my-registry.v2"} {
		assert.True(t, validSourceName(ok), ok)
	}
	for _, bad := range []string{"", "`", "{", "/", ":", "_", "A", "a b", "é"} {
		assert.False(t, validSourceName(bad), bad)
	}
}

func TestCheckHostPort(t *testing.T) {
	for _, ok := range []string{"h:1", "[::1]:65535", "10.0.0.1:80"} {
		assert.NoError(t, checkHostPort(ok), ok)
	}
	for _, bad := range []string{"a b:1", "a\t:1", "a,b:1", "a=b:1", "a/b:1", "a?b:1", "a#b:1", "h:x", "h:0", "h:65536"} {
		assert.Error(t, checkHostPort(bad), bad)
	}
}

// Stopping a dns or file watch stops its timer, and a ResolveNow replaces
// the timer rather than adding one.
func TestSources_TimersStoppedAndReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eps.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:5001"]}]}`), 0o644))
	for _, tt := range []struct {
		name string
		src  func(*fakeClock) Source
	}{
		{"h.test:1", func(clk *fakeClock) Source {
			return &dnsSource{res: &deadlineResolver{}, clk: clk, rand: func() float64 { return 0.5 }}
		}},
		{path, func(clk *fakeClock) Source { return &fileSource{clk: clk} }},
	} {
		clk := newFakeClock()
		ch := make(chan Update, 10)
		resolveNow, stop, err := tt.src(clk).Watch(context.Background(), tt.name, func(u Update) { ch <- u })
		require.NoError(t, err)
		nextUpdate(t, ch)
		clk.waitCreated(t, 1)
		resolveNow()
		clk.waitCreated(t, 2)
		assert.Len(t, clk.activeTimers(), 1, "%s: a ResolveNow must replace the timer", tt.name)
		stop()
		assert.Empty(t, clk.activeTimers(), "%s: stop must stop the timer", tt.name)
	}
}

// Of several unsupported parameters the error names the first in
// alphabetical order, whatever order the map gave.
func TestCheckKeys_NamesTheFirstUnknown(t *testing.T) {
	for range 20 {
		err := checkKeys("dns", map[string]string{"zz": "", "mm": "", "aa": "", "interval": ""}, "interval", "srv")
		require.EqualError(t, err, "query parameter aa: not supported by source dns, must be one of: emptyGrace, lkgTTL, interval, srv")
	}
	assert.NoError(t, checkKeys("dns", map[string]string{"srv": ""}, "interval", "srv"))
}

func TestRegisterSource_NameIsLowerCased(t *testing.T) {
	s := &testSource{}
	RegisterSource("Mixed-Case.Test", s)
	got, _ := lookupSource("mixed-case.test")
	assert.Same(t, s, got)
}

// stop and Close return only once their goroutine has: a correct
// implementation always passes; one that does not wait is caught unless its
// goroutine happens to finish first.
func TestStopWaitsForTheGoroutine(t *testing.T) {
	for range 20 {
		var finished atomic.Bool
		stop := Go(context.Background(), func(ctx context.Context) {
			<-ctx.Done()
			finished.Store(true)
		})
		stop()
		require.True(t, finished.Load(), "Go's stop returned before run did")
	}
	src, name := registerTestSource()
	r, err := (&builder{clk: clock.Real()}).Build(mustTarget(t, "fulcrum://"+name+"/svc"), newRecorder(), resolver.BuildOptions{})
	require.NoError(t, err)
	src.send(Update{Endpoints: eps("10.0.0.1:1")})
	r.Close()
	select {
	case <-r.(*fulcrumResolver).done:
	default:
		t.Fatal("Close returned before the run goroutine did")
	}
}

// A path that cannot be read (a directory) is an error naming the cause.
func TestFileWatcher_UnreadablePath(t *testing.T) {
	dir := t.TempDir()
	ch, _ := watchUpdates(t, &fileSource{clk: newFakeClock()}, dir)
	u := nextUpdate(t, ch)
	require.Error(t, u.Err)
	assert.Contains(t, u.Err.Error(), "is a directory")
}

func TestParseFile_RepeatedAddressNamesTheFirst(t *testing.T) {
	_, problems, err := parseFile([]byte(`{"endpoints":[{"addresses":["a:1","b:1"]},{"addresses":["a:1","b:1"]}]}`))
	require.NoError(t, err)
	require.Len(t, problems, 1)
	assert.Equal(t, "endpoints[1] skipped: addresses: a:1, must not repeat endpoints[0]", problems[0])
}

func TestParseFile_NullEntry(t *testing.T) {
	_, problems, err := parseFile([]byte(`{"endpoints":[null,{"addresses":["a:1"]}]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"endpoints[0] skipped: entry: null, must be an object"}, problems)
}

// The file's weight bounds are [1, 10000], both ends included.
func TestParseFile_WeightBounds(t *testing.T) {
	fc, problems, err := parseFile([]byte(`{"endpoints":[{"addresses":["a:1"],"weight":1},{"addresses":["b:1"],"weight":10000}]}`))
	require.NoError(t, err)
	assert.Empty(t, problems)
	assert.Equal(t, []Endpoint{{Addresses: []string{"a:1"}, Weight: 1}, {Addresses: []string{"b:1"}, Weight: 10000}}, fc.endpoints)
}

func TestFileSource_RejectsMalformedQuery(t *testing.T) {
	_, _, err := (&fileSource{}).Watch(context.Background(), "x.json?a=%zz", func(Update) {})
	assert.ErrorContains(t, err, `query: "a=%zz"`)
}

// Inputs Build never passes on (it rejects them first) are still rejected
// by the static source itself.
func TestStaticSource_RejectsWhatBuildFiltersOut(t *testing.T) {
	_, err := parseStatic("")
	assert.EqualError(t, err, "static list: empty, must be host:port[=weight][;zone=zone][,...]")
	_, _, err = staticSource{}.Watch(context.Background(), "127.0.0.1:1?a=%zz", func(Update) {})
	assert.ErrorContains(t, err, `query: "a=%zz"`)
}
