// Package resolver implements the "fulcrum" name resolver, which reads
// endpoints, weights, zones and metadata from pluggable discovery sources.
//
// It owns discovery: targets, sources, validation, change detection,
// last-known-good and the empty-set rule. It never decides which endpoint
// gets traffic (the balancer's engine does), and the HTTP transport uses it
// through grpc-go's resolver API like a channel does.
package resolver

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/fulcrum-lb/fulcrum/fulcrumz"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
	"github.com/fulcrum-lb/fulcrum/internal/passthrough"
)

// Scheme is the URI scheme of Fulcrum targets: fulcrum://<source>/<name>.
const Scheme = "fulcrum"

// Query parameters consumed by the common layer: lkgTTL bounds how long the
// last known good set is served while the source fails; emptyGrace is how
// long a registry's empty answer must persist before it empties the channel.
const (
	commonKeyLKGTTL     = "lkgTTL"
	commonKeyEmptyGrace = "emptyGrace"
)

// commonKeys are the query parameters the common layer consumes.
var commonKeys = []string{commonKeyEmptyGrace, commonKeyLKGTTL}

var (
	registryMu sync.Mutex
	registry   = map[string]Source{}
)

func init() {
	RegisterSource("static", staticSource{})
	RegisterSource("dns", &dnsSource{})
	RegisterSource("file", &fileSource{})
	resolver.Register(&builder{clk: clock.Real()})
}

// RegisterSource makes s available as fulcrum://<name>/... . name is
// case-insensitive and must be a valid URI host: letters, digits, '-' and
// '.'. Registering a name again replaces the earlier source for channels built
// afterwards, like resolver.Register in grpc-go. It is meant to be called from
// init or before any channel uses the name; it is safe for concurrent use.
func RegisterSource(name string, s Source) {
	name = strings.ToLower(name)
	if !validSourceName(name) || s == nil {
		logger.Errorf("fulcrum resolver: RegisterSource(%q, %T) ignored: name must be non-empty [a-z0-9.-] and source non-nil", name, s)
		return
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = s
}

func validSourceName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func lookupSource(name string) (Source, []string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	s, ok := registry[strings.ToLower(name)]
	if ok {
		return s, nil
	}
	return nil, slices.Sorted(maps.Keys(registry))
}

// builder is the grpc resolver.Builder of the fulcrum scheme.
type builder struct {
	// Read-only after construction.
	clk     clock.Clock
	handled func() // see fulcrumResolver.handled; nil outside tests
}

func (*builder) Scheme() string { return Scheme }

// targetConfig is a parsed fulcrum:// target.
type targetConfig struct {
	sourceName string
	source     Source
	name       string        // what the Source receives (see Source)
	lkgTTL     time.Duration // 0: serve the last good set for ever
	emptyGrace time.Duration // 0: an empty answer takes effect at once
}

// parseTarget splits t into its source, the name the source receives and the
// options of the common layer. Errors name the bad part and what is allowed.
func parseTarget(t resolver.Target) (targetConfig, error) {
	u := t.URL
	var tc targetConfig
	switch {
	case u.Opaque != "":
		return tc, fmt.Errorf("form: %q, must be fulcrum://<source>/<name>", u.Scheme+":"+u.Opaque)
	case u.User != nil:
		return tc, fmt.Errorf("userinfo: %q, must be empty", u.User.String())
	case u.Fragment != "":
		return tc, fmt.Errorf("fragment: %q, must be empty", u.Fragment)
	}
	src, registered := lookupSource(u.Host)
	if src == nil {
		return tc, fmt.Errorf("source: %q, must be one of the registered sources: %s", u.Host, strings.Join(registered, ", "))
	}
	tc.sourceName, tc.source = strings.ToLower(u.Host), src
	name := t.Endpoint()
	if name == "" {
		return tc, fmt.Errorf("name: %q, must be non-empty (fulcrum://%s/<name>)", name, tc.sourceName)
	}
	if strings.Contains(name, "?") {
		return tc, fmt.Errorf("name: %q, must not contain a decoded \"?\"", name)
	}
	q, err := parseQuery(u.RawQuery)
	if err != nil {
		return tc, err
	}
	if v, ok := q[commonKeyLKGTTL]; ok {
		// One day is far longer than any outage a stale list should paper
		// over; leaving lkgTTL out means "for ever".
		if tc.lkgTTL, err = parseDuration(commonKeyLKGTTL, v, time.Millisecond, 24*time.Hour); err != nil {
			return tc, err
		}
		delete(q, commonKeyLKGTTL)
	}
	tc.emptyGrace = DefaultEmptyGrace
	if v, ok := q[commonKeyEmptyGrace]; ok {
		// 0 restores "at once"; a day, like lkgTTL, bounds a typo.
		if tc.emptyGrace, err = parseDuration(commonKeyEmptyGrace, v, 0, 24*time.Hour); err != nil {
			return tc, err
		}
		delete(q, commonKeyEmptyGrace)
	}
	tc.name = name
	if len(q) > 0 {
		tc.name += "?" + encodeQuery(q)
	}
	return tc, nil
}

func (b *builder) Build(t resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	target := t.URL.String()
	tc, err := parseTarget(t)
	if err != nil {
		return nil, fmt.Errorf("fulcrum resolver: target %q: %w", target, err)
	}
	r := newFulcrumResolver(target, tc, cc, b.clk)
	r.initMetrics(opts.MetricsRecorder, t.String())
	r.handled = b.handled
	if err := r.start(); err != nil {
		r.metrics.close()
		return nil, fmt.Errorf("fulcrum resolver: target %q: %w", target, err)
	}
	r.unregisterz = fulcrumz.RegisterResolver(target, r.status.get)
	return r, nil
}

// WarnIfPassthrough logs a warning, and returns true, when target can only
// ever give a load balancer one backend (the passthrough scheme); for
// grpc-go's dns scheme it notes at info level that the list is re-resolved
// only on connection failures. It forwards to the balancer's own check,
// which lives in a package that registers nothing, so that importing the
// balancer does not register the fulcrum scheme.
func WarnIfPassthrough(target resolver.Target) bool { return passthrough.Warn(target) }
