// Package consul discovers service instances in Consul for the fulcrum
// resolver, with blocking queries on the health endpoint, and registers
// gRPC servers with the local Consul agent under a gRPC health check.
//
// It follows the rules of Consul's blocking-query documentation
// (https://developer.hashicorp.com/consul/api-docs/features/blocking):
// reset the index when it goes backwards, never block on index 0, treat a
// response as no proof of change, rate-limit successive queries and back off
// on errors, with jitter.
package consul

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc/grpclog"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

var logger = grpclog.Component("fulcrum")

// NewSource returns a Source that watches the healthy instances of a Consul
// service through client: fulcrum://<registered name>/<service>[?params].
// The caller keeps ownership of client.
func NewSource(client *api.Client, opts Options) (resolver.Source, error) {
	if client == nil {
		return nil, errors.New("consul: client: nil, must be non-nil")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &source{client: client, opts: opts, rand: rand.Float64}, nil
}

type source struct {
	client *api.Client
	opts   Options
	// The time and randomness of the watches, replaced by tests so that
	// pauses are decided, and observed, without sleeping.
	clk  resolver.Clock // nil: the real clock
	rand func() float64 // in [0, 1); safe for concurrent use
}

// Watch starts one goroutine that follows the service with blocking queries
// until ctx is done or stop is called. resolveNow is a no-op: the blocking
// query already returns as soon as the service changes, and pulling a query
// forward would defeat the rate limit and the back-off.
func (s *source) Watch(ctx context.Context, name string, report func(resolver.Update)) (resolveNow func(), stop func(), err error) {
	svc, opts, err := parseName(name, s.opts)
	if err != nil {
		return nil, nil, err
	}
	w := &watch{
		health:  s.client.Health(),
		service: svc,
		opts:    opts,
		report:  report,
	}
	// Rate limit: at least MinInterval (jittered) between the starts of
	// two queries, whatever the answer was; after a failure the pause is
	// the longer of that and the back-off.
	loop := &resolver.Loop{
		Backoff:  resolver.Backoff{Min: opts.BackoffMin, Max: opts.BackoffMax, Rand: s.rand},
		Interval: func() time.Duration { return opts.MinInterval + time.Duration(s.rand()*float64(opts.MinInterval/2)) },
		Clock:    s.clk,
	}
	return func() {}, loop.Start(ctx, w.attempt), nil
}

// watch follows one service. Its fields are owned by the goroutine running
// run; the ones set at construction are read-only.
type watch struct {
	health  *api.Health
	service string
	opts    Options
	report  func(resolver.Update)

	index    uint64              // the next query's index; 0: do not block
	reported []resolver.Endpoint // the last set reported, sorted
	sent     bool                // a set has been reported
	errs     resolver.ErrorOnce  // failing since the last set reported
	zeroSeen bool                // an answer had index 0 (logged once)
}

func (w *watch) logf(format string, args ...any) {
	logger.Infof("[consul %p] "+format, append([]any{w}, args...)...)
}

func (w *watch) warningf(format string, args ...any) {
	logger.Warningf("[consul %p] "+format, append([]any{w}, args...)...)
}

// attempt runs one query and handles its answer; it fails (and the loop
// backs off) only when the query does. An unreachable or failing server
// keeps the last index: the data it refers to is still what we hold.
func (w *watch) attempt(ctx context.Context) error {
	entries, meta, err := w.query(ctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		w.fail(fmt.Errorf("consul: querying the health of service %q: %w", w.service, err))
		return err
	}
	w.handle(entries, meta)
	return nil
}

// query runs one blocking query. It gives up after Wait + Wait/16 (Consul's
// largest jitter) + Timeout.
func (w *watch) query(ctx context.Context) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	o := w.opts
	qctx, cancel := context.WithTimeout(ctx, o.Wait+o.Wait/16+o.Timeout)
	defer cancel()
	q := &api.QueryOptions{
		Datacenter: o.Datacenter,
		Namespace:  o.Namespace,
		Partition:  o.Partition,
		AllowStale: o.AllowStale,
		WaitIndex:  w.index,
		WaitTime:   o.Wait,
	}
	// passingOnly is false on purpose: the answer then lists every
	// registered instance with its checks, which is how an empty healthy
	// set is told apart from a service with no instances at all.
	return w.health.ServiceMultipleTags(w.service, o.Tags, false, q.WithContext(qctx))
}

// handle processes one successful answer: it moves the index on by Consul's
// rules and reports the set if it differs from the last one reported.
func (w *watch) handle(entries []*api.ServiceEntry, meta *api.QueryMeta) {
	prev, idx := w.index, meta.LastIndex
	backwards := false
	switch {
	case idx == 0:
		// "Sanity check index is greater than zero": a zero index would
		// make the next query return at once, for ever. 1 is always safe.
		if !w.zeroSeen {
			w.warningf("service %q: X-Consul-Index 0 in the answer (a Consul bug); blocking on index 1", w.service)
			w.zeroSeen = true
		}
		w.index = 1
	case idx < prev:
		// "Reset the index if it goes backwards" (snapshot restore, server
		// change): the next query fetches the current state without
		// blocking and the loop starts over from its index.
		w.warningf("service %q: X-Consul-Index went back from %d to %d; resetting to 0", w.service, prev, idx)
		w.index, backwards = 0, true
	default:
		w.index = idx
	}
	set := endpoints(entries, w.opts.IncludeWarning, w.opts.ZoneMeta)
	if len(set.eps) == 0 {
		if err := emptyVerdict(set, meta, backwards); err != nil {
			if backwards {
				// The immediate re-query after the reset decides.
				return
			}
			w.fail(fmt.Errorf("consul: service %q: %w", w.service, err))
			return
		}
	}
	for _, p := range set.problems {
		w.warningf("service %q: %s", w.service, p)
	}
	if w.sent && !w.errs.Failing() && equalSets(set.eps, w.reported) {
		// "A critical note is that the return of a blocking request is no
		// guarantee of a change": nothing to report.
		return
	}
	if w.errs.Clear() {
		w.logf("service %q: Consul answers again (index %d): %d instances", w.service, w.index, len(set.eps))
	}
	w.reported, w.sent = set.eps, true
	if logger.V(2) {
		w.logf("service %q at index %d: %d usable of %d registered", w.service, w.index, len(set.eps), set.registered)
	}
	// HoldEmpty: an agent restarting answers [] with a known leader until
	// its instances are back; the resolver waits out emptyGrace.
	w.report(resolver.Update{Endpoints: set.eps, Authoritative: true, HoldEmpty: true})
}

// errNotConfirmed marks an empty answer that does not prove that the service
// has no instances; the resolver keeps its last good set.
var errNotConfirmed = errors.New("no instance to use")

// emptyVerdict decides whether an answer with no usable instance is
// authoritative (nil) or a blip (an error saying why). Consul's health
// endpoint answers [] both for a deregistered service and, from a server
// that lost or has not yet got its state, for a live one; a service whose
// instances are all failing their checks is not gone either. Only an answer
// that lists no instance at all, from a server that knows a leader, with a
// valid index that did not go backwards, says the service has none.
func emptyVerdict(set endpointSet, meta *api.QueryMeta, backwards bool) error {
	switch {
	case set.registered > 0:
		return fmt.Errorf("%w: none of its %d registered instances is passing its checks", errNotConfirmed, set.registered)
	case !meta.KnownLeader:
		return fmt.Errorf("%w: an empty answer from a Consul server that knows no leader (X-Consul-KnownLeader: false)", errNotConfirmed)
	case meta.LastIndex == 0:
		return fmt.Errorf("%w: an empty answer without a valid X-Consul-Index", errNotConfirmed)
	case backwards:
		return fmt.Errorf("%w: an empty answer whose index went backwards", errNotConfirmed)
	}
	return nil
}

// fail reports err; the same error again is only logged at V(2), so that an
// outage is reported (and logged) once per distinct cause.
func (w *watch) fail(err error) {
	if !w.errs.New(err) {
		if logger.V(2) {
			w.logf("still failing: %v", err)
		}
		return
	}
	w.warningf("%v", err)
	w.report(resolver.Update{Err: err})
}
