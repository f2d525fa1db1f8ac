package resolver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

const (
	fileDefaultInterval = time.Second
	fileMinInterval     = 10 * time.Millisecond
	fileMaxInterval     = time.Hour
	// fileMaxSize bounds what is read: an endpoints file is small, and a
	// runaway file must not exhaust the client's memory.
	fileMaxSize = 16 << 20
	// fileRacyWindow: a write landing within the file system's timestamp
	// granularity after our read can leave mtime and size unchanged (git's
	// "racy clean" problem), so a file modified this recently is re-read
	// (and re-hashed) on every poll until it is older.
	fileRacyWindow = 2 * time.Second
)

// fileSource reads endpoints from a JSON file and polls it for changes:
//
//	fulcrum://file/<path>[?interval=1s]
//
// fulcrum://file//etc/svc.json is the absolute /etc/svc.json;
// fulcrum://file/conf/svc.json is relative to the working directory at Build.
type fileSource struct {
	clk clock.Clock // nil: the real clock
}

func (s *fileSource) Watch(ctx context.Context, name string, report func(Update)) (func(), func(), error) {
	path, q, err := splitName(name)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeys("file", q, "interval"); err != nil {
		return nil, nil, err
	}
	interval := fileDefaultInterval
	if v, ok := q["interval"]; ok {
		if interval, err = parseDuration("interval", v, fileMinInterval, fileMaxInterval); err != nil {
			return nil, nil, err
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("file path: %q: %v", path, err)
	}
	w := &fileWatcher{path: abs, interval: interval, clk: s.clk, report: report, now: make(chan struct{}, 1)}
	if w.clk == nil {
		w.clk = clock.Real()
	}
	return w.resolveNow, Go(ctx, w.run), nil
}

type fileWatcher struct {
	path     string
	interval time.Duration
	clk      clock.Clock
	report   func(Update)
	now      chan struct{} // capacity 1: a ResolveNow is pending

	// Owned by run.
	modTime  time.Time
	size     int64
	racy     bool
	hash     [sha256.Size]byte
	haveHash bool
	errs     ErrorOnce
}

func (w *fileWatcher) resolveNow() {
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// run polls: a stat per interval, a read only when mtime or size changed (or
// the last read was racy), a report only when the content hash changed. A
// ResolveNow polls at once: a stat is cheap.
func (w *fileWatcher) run(ctx context.Context) {
	for {
		w.poll()
		t := w.clk.NewTimer(w.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-w.now:
			t.Stop()
		}
	}
}

func (w *fileWatcher) fail(err error) {
	// A missing or broken file is reported once, not once per poll.
	if w.errs.New(err) {
		w.report(Update{Err: err})
	}
}

func (w *fileWatcher) poll() {
	fi, err := os.Stat(w.path)
	if err != nil {
		w.haveHash = false // re-read when it comes back, even if identical
		w.fail(fmt.Errorf("file %s: %w", w.path, err))
		return
	}
	if w.haveHash && !w.racy && fi.ModTime().Equal(w.modTime) && fi.Size() == w.size {
		return
	}
	readAt := w.clk.Now() // compared with mtime: the real clock outside tests
	data, err := readLimited(w.path)
	if err != nil {
		w.fail(fmt.Errorf("file %s: %w", w.path, err))
		return
	}
	w.modTime, w.size = fi.ModTime(), fi.Size()
	w.racy = !fi.ModTime().Before(readAt.Add(-fileRacyWindow))
	h := sha256.Sum256(data)
	if w.haveHash && h == w.hash {
		return
	}
	w.hash, w.haveHash = h, true
	f, problems, err := parseFile(data)
	for _, p := range problems {
		logger.Warningf("fulcrum resolver: file %s: %s", w.path, p)
	}
	if err != nil {
		// Typically a file caught half-written: the common layer keeps
		// the previous set, and the next write changes the hash.
		w.fail(fmt.Errorf("file %s: %w; keeping the previous endpoints", w.path, err))
		return
	}
	w.errs.Clear()
	w.report(Update{Endpoints: f.endpoints, Authoritative: f.authoritative})
}

func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, fileMaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > fileMaxSize {
		return nil, fmt.Errorf("size: more than %d bytes, must be at most %d", fileMaxSize, fileMaxSize)
	}
	return data, nil
}

// fileContents is a parsed endpoints file.
type fileContents struct {
	endpoints     []Endpoint
	authoritative bool
}

// parseFile parses an endpoints file:
//
//	{
//	  "endpoints": [
//	    {"addresses": ["10.0.0.1:50051", "[fd00::1]:50051"], "weight": 2, "zone": "a", "metadata": {"rack": "r1"}},
//	    {"addresses": ["10.0.0.2:50051"]}
//	  ],
//	  "authoritative": false
//	}
//
// A file that is not such a JSON object (empty, truncated, no "endpoints"
// list) is an error: the caller keeps the previous set. A bad entry is
// skipped and described in problems ("endpoints[2].weight: 0, must be ...");
// only when every entry is bad is the file an error. Unknown fields are
// reported in problems but do not skip anything.
func parseFile(data []byte) (fileContents, []string, error) {
	var fc fileContents
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return fc, nil, errors.New("content: empty, must be a JSON object with an \"endpoints\" list")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fc, nil, fmt.Errorf("content: %v, must be a JSON object with an \"endpoints\" list", jsonErr(err))
	}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if k != "endpoints" && k != "authoritative" {
			problems = append(problems, fmt.Sprintf("%s: unknown field ignored", k))
		}
	}
	if raw, ok := top["authoritative"]; ok {
		if err := json.Unmarshal(raw, &fc.authoritative); err != nil {
			return fc, problems, fmt.Errorf("authoritative: %s, must be true or false", raw)
		}
	}
	rawEps, ok := top["endpoints"]
	if !ok {
		return fc, problems, errors.New("endpoints: missing, must be a list")
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(rawEps, &entries); err != nil || entries == nil {
		return fc, problems, fmt.Errorf("endpoints: %s, must be a list", truncate(rawEps))
	}
	seen := make(map[string]int)
	for i, raw := range entries {
		ep, entryProblems, err := parseFileEntry(raw)
		for _, p := range entryProblems {
			problems = append(problems, fmt.Sprintf("endpoints[%d].%s", i, p))
		}
		if err == nil {
			for _, a := range ep.Addresses {
				if j, dup := seen[a]; dup {
					err = fmt.Errorf("addresses: %s, must not repeat endpoints[%d]", a, j)
					break
				}
			}
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("endpoints[%d] skipped: %v", i, err))
			continue
		}
		for _, a := range ep.Addresses {
			seen[a] = i
		}
		fc.endpoints = append(fc.endpoints, ep)
	}
	if len(fc.endpoints) == 0 && len(entries) > 0 {
		return fc, problems, fmt.Errorf("endpoints: none of the %d entries is valid", len(entries))
	}
	return fc, problems, nil
}

func parseFileEntry(raw json.RawMessage) (Endpoint, []string, error) {
	var ep Endpoint
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return ep, nil, fmt.Errorf("entry: %s, must be an object", truncate(raw))
	}
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if k != "addresses" && k != "weight" && k != "metadata" && k != "zone" {
			problems = append(problems, fmt.Sprintf("%s: unknown field ignored", k))
		}
	}
	if err := json.Unmarshal(fields["addresses"], &ep.Addresses); err != nil || len(ep.Addresses) == 0 {
		return ep, problems, fmt.Errorf("addresses: %s, must be a non-empty list of \"host:port\" strings", truncate(fields["addresses"]))
	}
	for _, a := range ep.Addresses {
		if err := checkHostPort(a); err != nil {
			return ep, problems, fmt.Errorf("addresses: %v", err)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ep.Addresses)))) != len(ep.Addresses) {
		return ep, problems, fmt.Errorf("addresses: %s, must not repeat an address", truncate(fields["addresses"]))
	}
	if rawW, ok := fields["weight"]; ok {
		w, err := strconv.ParseUint(string(rawW), 10, 32)
		if err != nil || w < 1 || w > uint64(attrs.MaxWeight) {
			return ep, problems, fmt.Errorf("weight: %s, must be an integer in [1, %d]", truncate(rawW), attrs.MaxWeight)
		}
		ep.Weight = uint32(w)
	}
	if rawMD, ok := fields["metadata"]; ok {
		if err := json.Unmarshal(rawMD, &ep.Metadata); err != nil {
			return ep, problems, fmt.Errorf("metadata: %s, must be an object of strings", truncate(rawMD))
		}
	}
	if rawZ, ok := fields["zone"]; ok {
		if err := json.Unmarshal(rawZ, &ep.Zone); err != nil {
			return ep, problems, fmt.Errorf("zone: %s, must be a string", truncate(rawZ))
		}
	}
	if _, err := ep.ZoneOf(); err != nil {
		return ep, problems, err
	}
	return ep, problems, nil
}

// jsonErr adds the byte offset to a syntax error, the most useful detail when
// a file was caught half-written.
func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	return err.Error()
}

// truncate keeps log lines short when a field holds something large.
func truncate(raw json.RawMessage) string {
	const limit = 60
	if raw == nil {
		return "missing"
	}
	if len(raw) > limit {
		return string(raw[:limit]) + "..."
	}
	return string(raw)
}
