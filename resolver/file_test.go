package resolver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		want         []Endpoint
		wantAuth     bool
		wantProblems []string // substrings, in order
		wantErr      string
	}{
		{
			name: "full entry and defaults",
			in: `{"endpoints":[
				{"addresses":["127.0.0.1:5001","[::1]:5001"],"weight":2,"metadata":{"zone":"a"}},
				{"addresses":["127.0.0.1:5002"]}]}`,
			want: []Endpoint{
				{Addresses: []string{"127.0.0.1:5001", "[::1]:5001"}, Weight: 2, Metadata: map[string]string{"zone": "a"}},
				{Addresses: []string{"127.0.0.1:5002"}},
			},
		},
		{name: "authoritative empty", in: `{"endpoints":[],"authoritative":true}`, wantAuth: true},
		{name: "empty list, not authoritative", in: `{"endpoints":[]}`},
		{
			name: "bad entries skipped with index and field",
			in: `{"endpoints":[
				{"addresses":["127.0.0.1:5001"],"weight":0},
				{"addresses":["127.0.0.1:5002"],"weight":10001},
				{"addresses":["127.0.0.1:5003"],"weight":1.5},
				{"addresses":["127.0.0.1"]},
				{"addresses":[]},
				{"weight":1},
				{"addresses":["127.0.0.1:5004"],"metadata":{"n":1}},
				"127.0.0.1:5005",
				{"addresses":["127.0.0.1:5006","127.0.0.1:5006"]},
				{"addresses":["127.0.0.1:5007"],"wieght":3},
				{"addresses":["127.0.0.1:5007"]}]}`,
			want: []Endpoint{{Addresses: []string{"127.0.0.1:5007"}}},
			wantProblems: []string{
				"endpoints[0] skipped: weight: 0, must be an integer in [1, 10000]",
				"endpoints[1] skipped: weight: 10001, must be an integer in [1, 10000]",
				"endpoints[2] skipped: weight: 1.5, must be an integer",
				`endpoints[3] skipped: addresses: "127.0.0.1": missing port in address`,
				"endpoints[4] skipped: addresses: [], must be a non-empty list",
				"endpoints[5] skipped: addresses: missing, must be a non-empty list",
				`endpoints[6] skipped: metadata: {"n":1}, must be an object of strings`,
				`endpoints[7] skipped: entry: "127.0.0.1:5005", must be an object`,
				"endpoints[8] skipped: addresses: [\"127.0.0.1:5006\",\"127.0.0.1:5006\"], must not repeat an address",
				"endpoints[9].wieght: unknown field ignored",
				"endpoints[10] skipped: addresses: 127.0.0.1:5007, must not repeat endpoints[9]",
			},
		},
		{name: "unknown top-level field", in: `{"endpoints":[{"addresses":["h:1"]}],"version":3}`,
			want: []Endpoint{{Addresses: []string{"h:1"}}}, wantProblems: []string{"version: unknown field ignored"}},
		{name: "half-written", in: `{"endpoints":[{"addresses":["127.0.0.1:5001"]},{"addr`, wantErr: "content: invalid JSON at byte"},
		{name: "empty file", in: "  \n", wantErr: "content: empty, must be a JSON object"},
		{name: "not an object", in: `[1]`, wantErr: "content: json: cannot unmarshal array"},
		{name: "null", in: `null`, wantErr: "endpoints: missing, must be a list"},
		{name: "no endpoints", in: `{}`, wantErr: "endpoints: missing, must be a list"},
		{name: "endpoints not a list", in: `{"endpoints":{"a":1}}`, wantErr: `endpoints: {"a":1}, must be a list`},
		{name: "endpoints null", in: `{"endpoints":null}`, wantErr: `endpoints: null, must be a list`},
		{name: "authoritative not bool", in: `{"endpoints":[],"authoritative":"yes"}`, wantErr: `authoritative: "yes", must be true or false`},
		{name: "nothing valid", in: `{"endpoints":[{"addresses":["x"]}]}`, wantErr: "endpoints: none of the 1 entries is valid",
			wantProblems: []string{`endpoints[0] skipped: addresses: "x": missing port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, err := parseFile([]byte(tt.in))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got.endpoints)
				assert.Equal(t, tt.wantAuth, got.authoritative)
			}
			require.Len(t, problems, len(tt.wantProblems), "%q", problems)
			for i, p := range tt.wantProblems {
				assert.Contains(t, problems[i], p)
			}
		})
	}
}

func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

// The file source reports a good file, reports (once) a half-written one as
// an error so the common layer keeps the previous set, ignores rewrites with
// identical content, and follows a missing file that appears later.
func TestFileWatcher_FollowsWritesAndRejectsHalfWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.json")
	ch, resolveNow := watchUpdates(t, &fileSource{}, path+"?interval=10ms")

	u := nextUpdate(t, ch)
	require.Error(t, u.Err, "a missing file is an error")
	assert.Contains(t, u.Err.Error(), path)

	writeAtomic(t, path, `{"endpoints":[{"addresses":["127.0.0.1:5001"],"weight":2}]}`)
	u = nextUpdate(t, ch)
	require.NoError(t, u.Err)
	assert.Equal(t, []Endpoint{{Addresses: []string{"127.0.0.1:5001"}, Weight: 2}}, u.Endpoints)

	// Half-written in place: os.WriteFile truncates, then writes part of
	// the file. The poll may catch the empty or the partial file; either is
	// an error that names the file.
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:50`), 0o644))
	u = nextUpdate(t, ch)
	require.Error(t, u.Err)
	assert.Contains(t, u.Err.Error(), path)
	assert.Regexp(t, `content: (empty|invalid JSON at byte \d+)`, u.Err.Error())
	assert.Contains(t, u.Err.Error(), "keeping the previous endpoints")

	// The writer finishes; errors for intermediate states may come first.
	require.NoError(t, os.WriteFile(path, []byte(`{"endpoints":[{"addresses":["127.0.0.1:5002"]}]}`), 0o644))
	u = nextUpdate(t, ch)
	for u.Err != nil {
		u = nextUpdate(t, ch)
	}
	assert.Equal(t, []Endpoint{{Addresses: []string{"127.0.0.1:5002"}}}, u.Endpoints)

	// Same content rewritten (new mtime): hashed, not re-reported. A
	// different file afterwards must be the next update.
	writeAtomic(t, path, `{"endpoints":[{"addresses":["127.0.0.1:5002"]}]}`)
	resolveNow()
	writeAtomic(t, path, `{"endpoints":[{"addresses":["127.0.0.1:5003"]}],"authoritative":true}`)
	u = nextUpdate(t, ch)
	assert.Equal(t, []Endpoint{{Addresses: []string{"127.0.0.1:5003"}}}, u.Endpoints)
	assert.True(t, u.Authoritative)
}

func TestFileSource_RelativePathIsAbsolutizedAtBuild(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("eps.json", []byte(`{"endpoints":[{"addresses":["127.0.0.1:1"]}]}`), 0o644))
	ch, _ := watchUpdates(t, &fileSource{}, "eps.json")
	u := nextUpdate(t, ch)
	require.NoError(t, u.Err)
	assert.Equal(t, "127.0.0.1:1", u.Endpoints[0].Addresses[0])
}

func TestParseStatic(t *testing.T) {
	got, err := parseStatic("127.0.0.1:5001=3,127.0.0.1:5002,[::1]:5001=2,backend.internal:80=10000")
	require.NoError(t, err)
	assert.Equal(t, []Endpoint{
		{Addresses: []string{"127.0.0.1:5001"}, Weight: 3},
		{Addresses: []string{"127.0.0.1:5002"}},
		{Addresses: []string{"[::1]:5001"}, Weight: 2},
		{Addresses: []string{"backend.internal:80"}, Weight: attrs.MaxWeight},
	}, got)
}

// FuzzParseStatic: the static target parser never panics, and what it
// accepts is valid and survives a round trip through the documented syntax.
func FuzzParseStatic(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5001", "127.0.0.1:5001=3,127.0.0.1:5002", "[::1]:5001=2", "a:1,,b:2", "=", ":", "[::1", "h:1=99999999999",
		"[::1]:5001=2;zone=a,h:2;zone=us-east-1a", "h:1;zone=a;zone=b", "h:1;", "h:1;zone=", "h:1;az=a", "h:1;zone=a=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		eps, err := parseStatic(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "static ") {
				t.Fatalf("error %q does not name the static list or entry", err)
			}
			return
		}
		var parts []string
		for _, ep := range eps {
			if len(ep.Addresses) != 1 || checkHostPort(ep.Addresses[0]) != nil {
				t.Fatalf("accepted invalid endpoint %+v from %q", ep, s)
			}
			if ep.Weight > attrs.MaxWeight {
				t.Fatalf("accepted weight %d from %q", ep.Weight, s)
			}
			p := ep.Addresses[0]
			if ep.Weight != 0 {
				p += "=" + strconv.FormatUint(uint64(ep.Weight), 10)
			}
			if ep.Zone != "" {
				if !validStaticZone(ep.Zone) {
					t.Fatalf("accepted zone %q from %q", ep.Zone, s)
				}
				p += ";zone=" + ep.Zone
			}
			parts = append(parts, p)
		}
		again, err := parseStatic(strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
		assert.Equal(t, eps, again)
	})
}

// FuzzParseFile: the file parser never panics; what it accepts is valid.
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		`{"endpoints":[{"addresses":["127.0.0.1:5001"],"weight":2,"metadata":{"zone":"a"}}]}`,
		`{"endpoints":[{"addresses":["127.0.0.1:5001"],"zone":"a","metadata":{"zone":"b"}}]}`,
		`{"endpoints":[],"authoritative":true}`,
		`{"endpoints":[{"addresses":["127.0.0.1:50`,
		`{"endpoints":[{"addresses":["a:1"]},{"addresses":["a:1"]}]}`,
		`null`, ``, `[]`, `{"endpoints":[null,1,"x",{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, _, err := parseFile(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, ep := range fc.endpoints {
			if _, zerr := ep.ZoneOf(); len(ep.Addresses) == 0 || ep.Weight > attrs.MaxWeight || zerr != nil {
				t.Fatalf("accepted invalid endpoint %+v", ep)
			}
			for _, a := range ep.Addresses {
				if checkHostPort(a) != nil || seen[a] {
					t.Fatalf("accepted invalid or repeated address %q", a)
				}
				seen[a] = true
			}
		}
	})
}
