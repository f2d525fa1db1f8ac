// Package etcd discovers service instances in etcd for the fulcrum resolver
// and registers servers there under a lease.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/grpclog"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

var logger = grpclog.Component("fulcrum")

const (
	// DefaultPrefix is the key prefix under which services live when
	// Options.Prefix (or RegisterOptions.Prefix) is empty.
	DefaultPrefix = "/fulcrum/services"

	defaultTimeout       = 5 * time.Second
	defaultProbeInterval = 5 * time.Second
	// minBackoff is the first wait before retrying a failed list or watch.
	minBackoff = 100 * time.Millisecond
)

// Options configures a Source. The zero value is ready to use.
type Options struct {
	// Prefix is the key prefix of all services; the instances of service
	// "name" are the keys directly below Prefix + "/" + name + "/". Default
	// DefaultPrefix; a trailing "/" is ignored.
	Prefix string
	// Timeout bounds each request to etcd (the list and the reachability
	// probe). Default 5s; must be >= 0.
	Timeout time.Duration
	// ProbeInterval is how often the source checks that etcd still answers.
	// A watch on an unreachable etcd just waits, so without the probe an
	// outage would go unnoticed; it is reported as Update.Err so that the
	// resolver keeps its last good set. It is also the longest wait between
	// retries. Default 5s; must be >= 0.
	ProbeInterval time.Duration
}

func (o Options) withDefaults() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	if o.Timeout < 0 {
		return o, fmt.Errorf("etcd: timeout: %v, must be >= 0", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	if o.ProbeInterval < 0 {
		return o, fmt.Errorf("etcd: probeInterval: %v, must be >= 0", o.ProbeInterval)
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = defaultProbeInterval
	}
	return o, nil
}

// NewSource returns a Source that watches the instances of each service in
// etcd through cli. The caller keeps ownership of cli and closes it after the
// last watch has stopped.
//
// Each key directly below Prefix/<name>/ is one instance; its value is the
// JSON object {"addresses":["host:port",...],"weight":2,"zone":"a","metadata":{...}}
// (weight, zone and metadata optional; a zone given both as "zone" and as
// metadata "zone" must agree) or a bare "host:port". Values that do not
// parse are skipped, with a logged reason naming the key. Deeper keys belong
// to other services and are ignored.
func NewSource(cli *clientv3.Client, opts Options) (resolver.Source, error) {
	if cli == nil {
		return nil, errors.New("etcd: client: nil, must be non-nil")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &source{cli: cli, opts: opts}, nil
}

type source struct {
	cli  *clientv3.Client
	opts Options
}

// Watch lists the instances of name, then watches the prefix from the
// listed revision on. resolveNow is a no-op: the watch keeps the set current.
func (s *source) Watch(ctx context.Context, name string, report func(resolver.Update)) (resolveNow func(), stop func(), err error) {
	if err := validName(name); err != nil {
		return nil, nil, err
	}
	w := &watch{
		cli:       s.cli,
		opts:      s.opts,
		keyPrefix: s.opts.Prefix + "/" + name + "/",
		report:    report,
		entries:   make(map[string]entry),
		needList:  true,
		loop:      &resolver.Loop{Backoff: resolver.Backoff{Min: minBackoff, Max: s.opts.ProbeInterval}},
	}
	probe := time.NewTicker(s.opts.ProbeInterval)
	stopLoop := w.loop.Start(ctx, func(ctx context.Context) error { return w.attempt(ctx, probe.C) })
	return func() {}, func() { stopLoop(); probe.Stop() }, nil
}

// validName rejects names that would make the key prefix of one service
// overlap another's or the root's, and query parameters: this source takes
// none, and the resolver passes unknown ones on after a "?".
func validName(name string) error {
	if i := strings.IndexByte(name, '?'); i >= 0 {
		return fmt.Errorf("etcd: parameters: %q, must be empty (the etcd source takes none)", name[i+1:])
	}
	if name == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("etcd: name: %q, must be non-empty without leading, trailing or double slashes", name)
	}
	return nil
}

// entry is the last value seen for one instance key.
type entry struct {
	raw string
	ep  resolver.Endpoint
	ok  bool // false: raw did not parse and the key is skipped
}

// watch follows one service. All its fields are owned by the goroutine that
// runs run; the ones set at construction are read-only.
type watch struct {
	cli       *clientv3.Client
	opts      Options
	keyPrefix string
	report    func(resolver.Update)

	entries  map[string]entry // by full key
	rev      int64            // the revision entries reflect
	needList bool             // the next attempt lists (the first, and when rev is gone)
	errs     resolver.ErrorOnce
	loop     *resolver.Loop // runs attempt; its Backoff paces retries
}

// errWatchEnded makes the loop pause (back off) before watching again.
var errWatchEnded = errors.New("etcd: watch ended")

func (w *watch) logf(format string, args ...any) {
	logger.Infof("[etcd %p] "+format, append([]any{w}, args...)...)
}

func (w *watch) warningf(format string, args ...any) {
	logger.Warningf("[etcd %p] "+format, append([]any{w}, args...)...)
}

// attempt is one step of following the service: a list when one is
// needed (the first time, and whenever the revision being watched is no
// longer available: compaction, or an etcd restored to an older revision),
// else one etcd watch from the last revision seen until it ends. A failed
// list, and a watch that ended for any other reason than a needed re-list,
// are retried after a back-off pause; a watch resumes from the last
// revision seen, so no event is lost and none is replayed.
func (w *watch) attempt(ctx context.Context, probe <-chan time.Time) error {
	if w.needList {
		if err := w.list(ctx); err != nil {
			if ctx.Err() == nil {
				w.fail(fmt.Errorf("etcd: listing %q: %w", w.keyPrefix, err))
			}
			return err
		}
		w.needList = false
		return nil
	}
	if w.watchOnce(ctx, probe) {
		w.needList = true
		return nil
	}
	return errWatchEnded
}

// list replaces the in-memory set with a consistent read of the prefix and
// reports it.
func (w *watch) list(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	resp, err := w.cli.Get(lctx, w.keyPrefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	clear(w.entries)
	for _, kv := range resp.Kvs {
		w.put(string(kv.Key), kv.Value)
	}
	w.rev = resp.Header.Revision
	w.logf("listed %q at revision %d: %d keys", w.keyPrefix, w.rev, len(resp.Kvs))
	w.reportSet()
	return nil
}

// watchOnce runs one etcd watch. It returns true when the caller must
// re-list, false when the watch ended otherwise (or ctx is done).
func (w *watch) watchOnce(ctx context.Context, probe <-chan time.Time) (relist bool) {
	// A watcher of our own, rather than cli.Watcher, so that closing it
	// ends the stream and the goroutines it started (cli.Watcher's live
	// until cli is closed).
	watcher := clientv3.NewWatcher(w.cli)
	// Without a leader this member's data may be stale; RequireLeader makes
	// etcd cancel the watch instead of leaving it silently stuck.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	// Watch blocks until etcd has created the watch, which is forever
	// while etcd is unreachable; the probe must go on meanwhile.
	created := make(chan clientv3.WatchChan, 1)
	go func() {
		created <- watcher.Watch(wctx, w.keyPrefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	}()
	var wch clientv3.WatchChan // nil until created
	defer func() {
		cancel()
		if wch == nil {
			<-created // Watch returns once wctx is done
		}
		watcher.Close()
	}()
	for {
		select {
		case <-ctx.Done():
			return false
		case wch = <-created:
		case <-probe:
			rev, err := w.probe(ctx)
			switch {
			case ctx.Err() != nil:
				return false
			case err != nil:
				w.fail(fmt.Errorf("etcd: probing %q: %w", w.keyPrefix, err))
			case rev < w.rev:
				w.warningf("revision of %q went back from %d to %d (etcd restored from a backup?); re-listing", w.keyPrefix, w.rev, rev)
				return true
			case w.errs.Failing():
				// The watch resumes by itself once etcd is back, but it
				// may still be catching up; a list reports the current
				// set now, and clears the error even if nothing changed.
				w.logf("etcd answers again at revision %d; re-listing %q", rev, w.keyPrefix)
				return true
			}
		case resp, ok := <-wch:
			if !ok {
				if ctx.Err() == nil {
					w.logf("watch of %q closed; resuming from revision %d", w.keyPrefix, w.rev+1)
				}
				return false
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				// The events after w.rev are gone; only a fresh list can
				// tell what changed meanwhile.
				w.logf("revision %d of %q compacted (oldest kept: %d); re-listing", w.rev+1, w.keyPrefix, resp.CompactRevision)
				return true
			}
			if err := resp.Err(); err != nil {
				w.fail(fmt.Errorf("etcd: watching %q: %w", w.keyPrefix, err))
				return false
			}
			w.loop.Backoff.Reset()
			w.apply(resp)
		}
	}
}

// probe asks for the number of keys under the prefix: a linearizable read
// that fails when etcd is unreachable or has no leader. It returns etcd's
// current revision.
func (w *watch) probe(ctx context.Context) (int64, error) {
	pctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	resp, err := w.cli.Get(pctx, w.keyPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// apply updates the set with the events of one watch response and reports
// it if it changed.
func (w *watch) apply(resp clientv3.WatchResponse) {
	changed := false
	for _, ev := range resp.Events {
		key := string(ev.Kv.Key)
		switch ev.Type {
		case clientv3.EventTypePut:
			changed = w.put(key, ev.Kv.Value) || changed
		case clientv3.EventTypeDelete:
			if _, ok := w.entries[key]; ok {
				delete(w.entries, key)
				changed = true
			}
		}
	}
	// Like the etcd client's own resume logic: the last event's revision,
	// or the header's for a progress notification.
	if n := len(resp.Events); n > 0 {
		w.rev = resp.Events[n-1].Kv.ModRevision
	} else if resp.Header.Revision > w.rev {
		w.rev = resp.Header.Revision
	}
	if changed || w.errs.Failing() {
		w.reportSet()
	}
}

// put records the value of key and says whether the set changed.
func (w *watch) put(key string, value []byte) bool {
	id := strings.TrimPrefix(key, w.keyPrefix)
	if id == "" || strings.Contains(id, "/") {
		return false // a key of a nested service, e.g. <name>/v2/<id>
	}
	raw := string(value)
	if old, ok := w.entries[key]; ok && old.raw == raw {
		return false
	}
	ep, err := parseValue(value)
	if err != nil {
		w.warningf("skipping key %q: %v", key, err)
	}
	w.entries[key] = entry{raw: raw, ep: ep, ok: err == nil}
	return true
}

func (w *watch) reportSet() {
	keys := make([]string, 0, len(w.entries))
	for k := range w.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	eps := make([]resolver.Endpoint, 0, len(keys))
	skipped := 0
	for _, k := range keys {
		e := w.entries[k]
		if !e.ok {
			skipped++
			continue
		}
		eps = append(eps, e.ep)
	}
	w.errs.Clear()
	if logger.V(2) {
		w.logf("%q at revision %d: %d endpoints, %d skipped", w.keyPrefix, w.rev, len(eps), skipped)
	}
	// An empty set is authoritative only when the prefix really is empty:
	// if every value was malformed, a bad writer is more likely than a
	// service with no instances, and the resolver should keep its last set.
	// HoldEmpty: an empty prefix may only mean that the instances' leases
	// expired while they could not reach etcd; they put their keys back
	// when they do, so the resolver waits out emptyGrace.
	w.report(resolver.Update{Endpoints: eps, Authoritative: len(eps) > 0 || skipped == 0, HoldEmpty: true})
}

// fail reports the first error of an outage (the resolver keeps its last
// good set until the next set ends the outage); each distinct error after
// it is logged as a warning, repeats at info level.
func (w *watch) fail(err error) {
	first := !w.errs.Failing()
	if !w.errs.New(err) {
		w.logf("still failing: %v", err)
		return
	}
	w.warningf("%v", err)
	if first {
		w.report(resolver.Update{Err: err})
	}
}
