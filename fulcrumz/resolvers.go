package fulcrumz

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Resolver is the snapshot of one fulcrum:// resolver (one per channel, or
// HTTP transport host, whose target uses the fulcrum scheme).
type Resolver struct {
	// ID is unique among the resolvers of the process.
	ID      uint64    `json:"id"`
	Target  string    `json:"target"`
	Created time.Time `json:"created"`
	ResolverState
}

// ResolverState is what a resolver says about its target.
type ResolverState struct {
	// Source is the discovery source's registered name (static, dns,
	// file, etcd, consul, ...).
	Source string `json:"source"`
	// Endpoints is the number of endpoints in the channel.
	Endpoints int `json:"endpoints"`
	// SourceError is the source's current error, "" while it answers. The
	// channel meanwhile keeps its last known good set (bounded by lkgTTL).
	SourceError string `json:"sourceError,omitempty"`
	// EmptyHeldSince is set while an empty answer from a registry source is
	// held off: the source has answered "no endpoints" since then, and the
	// channel keeps its Endpoints until EmptyHeldUntil unless the source
	// reports some again.
	EmptyHeldSince *time.Time `json:"emptyHeldSince,omitempty"`
	EmptyHeldUntil *time.Time `json:"emptyHeldUntil,omitempty"`
}

type resolverEntry struct {
	id      uint64
	target  string
	created time.Time
	state   func() ResolverState
}

var resolvers = map[uint64]*resolverEntry{} // guarded by mu

// RegisterResolver adds a live resolver for target; state is called on the
// goroutine taking the snapshot and must not block for long. unregister
// (idempotent) removes it; call it when the resolver closes.
func RegisterResolver(target string, state func() ResolverState) (unregister func()) {
	mu.Lock()
	nextID++
	e := &resolverEntry{id: nextID, target: target, created: time.Now(), state: state}
	resolvers[e.id] = e
	mu.Unlock()
	return func() {
		mu.Lock()
		delete(resolvers, e.id)
		mu.Unlock()
	}
}

// Resolvers returns the state of every live resolver, by target then ID.
func Resolvers() []Resolver {
	mu.Lock()
	es := make([]*resolverEntry, 0, len(resolvers))
	for _, e := range resolvers {
		es = append(es, e)
	}
	mu.Unlock()
	slices.SortFunc(es, func(a, b *resolverEntry) int {
		return cmp.Or(cmp.Compare(a.target, b.target), cmp.Compare(a.id, b.id))
	})
	out := make([]Resolver, 0, len(es))
	for _, e := range es {
		out = append(out, Resolver{ID: e.id, Target: e.target, Created: e.created, ResolverState: e.state()})
	}
	return out
}

// WriteResolversText writes resolvers as a plain-text table.
func WriteResolversText(w io.Writer, rs []Resolver) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "no live fulcrum:// resolvers")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSOURCE\tENDPOINTS\tSTATE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Target, r.Source, r.Endpoints, resolverText(r.ResolverState))
	}
	return tw.Flush()
}

func resolverText(s ResolverState) string {
	switch {
	case s.EmptyHeldSince != nil && s.EmptyHeldUntil != nil:
		return fmt.Sprintf("EMPTY ANSWER HELD OFF since %s: keeping the endpoints until %s", s.EmptyHeldSince.Format("15:04:05.000"), s.EmptyHeldUntil.Format("15:04:05.000"))
	case s.SourceError != "":
		return "source failing, keeping the last known good set: " + s.SourceError
	}
	return "ok"
}
