package consul

import (
	"fmt"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults and bounds of Options. Consul caps wait at 10 minutes
// ("This is limited to 10 minutes", blocking queries documentation).
const (
	DefaultWait        = 60 * time.Second
	DefaultTimeout     = 5 * time.Second
	DefaultMinInterval = 250 * time.Millisecond
	DefaultBackoffMin  = 500 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second

	minWait        = 10 * time.Millisecond
	maxWait        = 10 * time.Minute
	minMinInterval = time.Millisecond
	maxMinInterval = time.Minute
	maxBackoff     = time.Hour
)

// Options configures a Source. The zero value is ready to use. Per-target
// query parameters (see the package README) override the filter fields.
type Options struct {
	// Wait is how long one blocking query may wait for a change (Consul's
	// wait parameter). Consul adds up to Wait/16 of its own jitter. Default
	// 60s; in [10ms, 10m].
	Wait time.Duration
	// Timeout is how much longer than Wait + Wait/16 a query may take
	// before it is abandoned as failed (a hung connection, a partitioned
	// agent). The consul/api client's own http.Client must not time out
	// sooner (its default has no timeout). Default 5s; must be >= 0.
	Timeout time.Duration
	// MinInterval is the least time between the starts of two successive
	// queries of one watch, whatever Consul answers: each pause is drawn
	// from [MinInterval, 1.5*MinInterval). It bounds the request rate of a
	// client facing a server that answers at once (index 0, an index that
	// moves on every idempotent write). Default 250ms; in [1ms, 1m].
	MinInterval time.Duration
	// BackoffMin and BackoffMax bound the pause after a failed query: it
	// doubles from BackoffMin up to BackoffMax, each pause drawn from
	// [b/2, b). Defaults 500ms and 30s; BackoffMin in (0, 1h], BackoffMax in
	// [BackoffMin, 1h].
	BackoffMin, BackoffMax time.Duration

	// IncludeWarning also reports instances whose worst check is warning,
	// weighted by their Weights.Warning (an instance whose warning weight is
	// 0 is left out). Default false: passing instances only.
	IncludeWarning bool
	// Tags keeps only instances that carry every one of these tags.
	Tags []string
	// Datacenter to query; default the agent's.
	Datacenter string
	// Namespace and Partition to query (Consul Enterprise); default the
	// agent's.
	Namespace, Partition string
	// AllowStale lets any server answer, not only the leader: faster and
	// available without a leader, possibly a little behind. An empty answer
	// is still trusted only from a server that knows a leader.
	AllowStale bool
	// ZoneMeta is the meta key that holds an instance's zone: the service
	// instance's meta (Service.Meta, set at registration) is read first,
	// then its node's (Node.Meta, the agent's node_meta). Default
	// DefaultZoneMeta; a Consul meta key (1 to 128 letters, digits, '-' and
	// '_').
	ZoneMeta string
}

// DefaultZoneMeta is the meta key read for the zone when Options.ZoneMeta
// is empty: the same key as the zone attribute (attrs.ZoneKey), so that
// Register's meta and a service meta written by hand need no option.
const DefaultZoneMeta = attrs.ZoneKey

// maxMetaKey is Consul's limit: "Metadata keys must be between 1 and 128
// characters (inclusive) in length".
const maxMetaKey = 128

// validMetaKey applies Consul's rule for service and node meta keys:
// "Metadata keys must contain only alphanumeric, -, and _ characters".
func validMetaKey(k string) bool {
	if k == "" || len(k) > maxMetaKey {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func checkZoneMeta(k string) error {
	if !validMetaKey(k) {
		return fmt.Errorf("consul: zoneMeta: %q, must be a Consul meta key: 1 to %d letters, digits, '-' and '_'", k, maxMetaKey)
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Wait, DefaultWait)
	def(&o.Timeout, DefaultTimeout)
	def(&o.MinInterval, DefaultMinInterval)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, max(DefaultBackoffMax, o.BackoffMin))
	switch {
	case o.Wait < minWait || o.Wait > maxWait:
		return o, fmt.Errorf("consul: wait: %v, must be in [%v, %v]", o.Wait, minWait, maxWait)
	case o.Timeout < 0:
		return o, fmt.Errorf("consul: timeout: %v, must be >= 0", o.Timeout)
	case o.MinInterval < minMinInterval || o.MinInterval > maxMinInterval:
		return o, fmt.Errorf("consul: minInterval: %v, must be in [%v, %v]", o.MinInterval, minMinInterval, maxMinInterval)
	case o.BackoffMin < 0 || o.BackoffMin > maxBackoff:
		return o, fmt.Errorf("consul: backoffMin: %v, must be in (0, %v]", o.BackoffMin, maxBackoff)
	case o.BackoffMax < o.BackoffMin || o.BackoffMax > maxBackoff:
		return o, fmt.Errorf("consul: backoffMax: %v, must be in [backoffMin (%v), %v]", o.BackoffMax, o.BackoffMin, maxBackoff)
	}
	for i, t := range o.Tags {
		if t == "" {
			return o, fmt.Errorf("consul: tags[%d]: %q, must be non-empty", i, t)
		}
	}
	if o.ZoneMeta == "" {
		o.ZoneMeta = DefaultZoneMeta
	}
	if err := checkZoneMeta(o.ZoneMeta); err != nil {
		return o, err
	}
	o.Tags = slices.Clone(o.Tags)
	return o, nil
}

// Target query parameters: fulcrum://consul/<service>?tag=a,b&dc=eu&...
const (
	paramTag       = "tag"
	paramDC        = "dc"
	paramNS        = "ns"
	paramPartition = "partition"
	paramWarning   = "warning"
	paramStale     = "stale"
	paramZoneMeta  = "zoneMeta"
)

var params = []string{paramDC, paramNS, paramPartition, paramStale, paramTag, paramWarning, paramZoneMeta}

// parseName splits the name the resolver hands over into the service and the
// options of this watch: o, overridden by the target's query parameters.
func parseName(name string, o Options) (string, Options, error) {
	svc, raw, _ := strings.Cut(name, "?")
	if err := validService(svc); err != nil {
		return "", o, err
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", o, fmt.Errorf("consul: parameters: %q: %v", raw, err)
	}
	for k, v := range q {
		if !slices.Contains(params, k) {
			return "", o, fmt.Errorf("consul: parameter %s: not supported, must be one of: %s", k, strings.Join(params, ", "))
		}
		if len(v) != 1 {
			return "", o, fmt.Errorf("consul: parameter %s: given %d times, must be given at most once", k, len(v))
		}
	}
	if v, ok := q[paramTag]; ok {
		o.Tags = strings.Split(v[0], ",")
		for i, t := range o.Tags {
			if t == "" {
				return "", o, fmt.Errorf("consul: tag: %q, must be a comma-separated list of non-empty tags (tag %d is empty)", v[0], i)
			}
		}
	}
	str := func(key string, dst *string) {
		if v, ok := q[key]; ok {
			*dst = v[0]
		}
	}
	str(paramDC, &o.Datacenter)
	str(paramNS, &o.Namespace)
	str(paramPartition, &o.Partition)
	str(paramZoneMeta, &o.ZoneMeta)
	if err := checkZoneMeta(o.ZoneMeta); err != nil {
		return "", o, err
	}
	for key, dst := range map[string]*bool{paramWarning: &o.IncludeWarning, paramStale: &o.AllowStale} {
		v, ok := q[key]
		if !ok {
			continue
		}
		if v[0] == "" {
			*dst = true
			continue
		}
		b, err := strconv.ParseBool(v[0])
		if err != nil {
			return "", o, fmt.Errorf("consul: %s: %q, must be true or false", key, v[0])
		}
		*dst = b
	}
	return svc, o, nil
}

// validService rejects names that would change the request path or could
// not be a Consul service name.
func validService(s string) error {
	if s == "" || strings.ContainsAny(s, "/?#% \t\r\n") {
		return fmt.Errorf("consul: service: %q, must be a non-empty Consul service name without '/', '?', '#', '%%' or spaces", s)
	}
	return nil
}
