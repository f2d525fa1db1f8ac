package resolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

const (
	dnsDefaultInterval = 30 * time.Second
	dnsMinInterval     = time.Second
	dnsMaxInterval     = 24 * time.Hour
	// dnsJitter spreads re-resolution of many clients started together
	// (a deploy) over ±10% of the interval so they do not hit DNS in step.
	dnsJitter = 0.1
	// dnsMinGap is the least time between two lookups that ResolveNow can
	// cause. The channel asks for re-resolution whenever a connection
	// fails; during a reconnect storm that is many times a second.
	dnsMinGap = 5 * time.Second
	// dnsLookupTimeout bounds one lookup (SRV plus its address lookups).
	dnsLookupTimeout = 10 * time.Second
)

// dnsResolver is the part of *net.Resolver the dns source uses.
type dnsResolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// dnsSource resolves host:port (A/AAAA) or an SRV name and re-resolves it
// periodically:
//
//	fulcrum://dns/<host>:<port>[?interval=30s]
//	fulcrum://dns/<srv name>?srv=true[&interval=30s]
//
// Its fields are for tests; the zero value uses net.DefaultResolver, the real
// clock and math/rand/v2.
type dnsSource struct {
	res  dnsResolver
	clk  clock.Clock
	rand func() float64 // in [0, 1)
}

type dnsConfig struct {
	host, port string // port is empty in SRV mode
	srv        bool
	interval   time.Duration
}

func parseDNSName(name string) (dnsConfig, error) {
	path, q, err := splitName(name)
	if err != nil {
		return dnsConfig{}, err
	}
	if err := checkKeys("dns", q, "interval", "srv"); err != nil {
		return dnsConfig{}, err
	}
	cfg := dnsConfig{interval: dnsDefaultInterval}
	if v, ok := q["interval"]; ok {
		if cfg.interval, err = parseDuration("interval", v, dnsMinInterval, dnsMaxInterval); err != nil {
			return cfg, err
		}
	}
	if v, ok := q["srv"]; ok {
		if cfg.srv, err = parseBool("srv", v); err != nil {
			return cfg, err
		}
	}
	if cfg.srv {
		if _, _, err := net.SplitHostPort(path); err == nil || path == "" {
			return cfg, fmt.Errorf("srv name: %q, must be a DNS name without a port, such as _grpc._tcp.example.com", path)
		}
		cfg.host = path
		return cfg, nil
	}
	if err := checkHostPort(path); err != nil {
		return cfg, fmt.Errorf("dns address %v", err)
	}
	cfg.host, cfg.port, _ = net.SplitHostPort(path)
	return cfg, nil
}

func (s *dnsSource) Watch(ctx context.Context, name string, report func(Update)) (func(), func(), error) {
	cfg, err := parseDNSName(name)
	if err != nil {
		return nil, nil, err
	}
	w := &dnsWatcher{cfg: cfg, res: s.res, clk: s.clk, rand: s.rand, report: report, now: make(chan struct{}, 1)}
	if w.res == nil {
		w.res = net.DefaultResolver
	}
	if w.clk == nil {
		w.clk = clock.Real()
	}
	if w.rand == nil {
		w.rand = rand.Float64
	}
	return w.resolveNow, Go(ctx, w.run), nil
}

type dnsWatcher struct {
	cfg    dnsConfig
	res    dnsResolver
	clk    clock.Clock
	rand   func() float64
	report func(Update)
	now    chan struct{} // capacity 1: a ResolveNow is pending
}

func (w *dnsWatcher) resolveNow() {
	select {
	case w.now <- struct{}{}:
	default:
	}
}

// run looks up, then waits interval±jitter; a ResolveNow (after the lookup
// ended: one during it is answered by it) pulls the next lookup forward,
// but never to less than dnsMinGap after the previous one.
func (w *dnsWatcher) run(ctx context.Context) {
	gap := min(dnsMinGap, w.cfg.interval)
	for {
		start := w.clk.Now()
		w.lookup(ctx)
		// A ResolveNow that arrived while the lookup ran is answered by it.
		select {
		case <-w.now:
		default:
		}
		next := start.Add(w.jittered())
		t := w.clk.NewTimer(next.Sub(w.clk.Now()))
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C():
				break wait
			case <-w.now:
				if earliest := start.Add(gap); earliest.Before(next) {
					next = earliest
					t.Stop()
					t = w.clk.NewTimer(next.Sub(w.clk.Now()))
				}
			}
		}
	}
}

func (w *dnsWatcher) jittered() time.Duration {
	f := 1 - dnsJitter + 2*dnsJitter*w.rand()
	return time.Duration(float64(w.cfg.interval) * f)
}

func (w *dnsWatcher) lookup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
	defer cancel()
	var u Update
	if w.cfg.srv {
		u = w.lookupSRV(ctx)
	} else {
		ips, err := w.res.LookupIPAddr(ctx, w.cfg.host)
		if err != nil {
			u.Err = fmt.Errorf("dns: lookup %s: %w", w.cfg.host, err)
		} else {
			u.Endpoints = ipEndpoints(ips, w.cfg.port)
		}
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return // closing; the result is moot
	}
	w.report(u)
}

func (w *dnsWatcher) lookupSRV(ctx context.Context) Update {
	_, records, err := w.res.LookupSRV(ctx, "", "", w.cfg.host)
	if err != nil {
		return Update{Err: fmt.Errorf("dns: lookup srv %s: %w", w.cfg.host, err)}
	}
	addrs := make(map[string][]net.IPAddr)
	var lookupErrs []error
	for _, r := range srvPreferred(records) {
		if _, done := addrs[r.Target]; done {
			continue
		}
		ips, err := w.res.LookupIPAddr(ctx, r.Target)
		if err != nil {
			lookupErrs = append(lookupErrs, err)
		}
		addrs[r.Target] = ips
	}
	eps, authoritativeEmpty, problems := srvEndpoints(records, addrs)
	for _, p := range problems {
		logger.Warningf("fulcrum resolver: dns srv %s: %s", w.cfg.host, p)
	}
	if len(eps) == 0 && !authoritativeEmpty && len(lookupErrs) > 0 {
		return Update{Err: fmt.Errorf("dns: srv %s: no target resolved: %w", w.cfg.host, errors.Join(lookupErrs...))}
	}
	return Update{Endpoints: eps, Authoritative: authoritativeEmpty}
}

// ipEndpoints makes one endpoint per address of an A/AAAA answer: DNS does
// not say which addresses belong to the same machine. Loopback addresses are
// the exception: they all name this host, so "localhost" answering 127.0.0.1
// and ::1 is one dual-stack endpoint whose pick_first child tries both.
func ipEndpoints(ips []net.IPAddr, port string) []Endpoint {
	var eps []Endpoint
	loopback := -1
	for _, ip := range ips {
		addr := net.JoinHostPort(ip.String(), port)
		if ip.IP.IsLoopback() {
			if loopback >= 0 {
				eps[loopback].Addresses = append(eps[loopback].Addresses, addr)
				continue
			}
			loopback = len(eps)
		}
		eps = append(eps, Endpoint{Addresses: []string{addr}})
	}
	return eps
}

// srvPreferred returns the records of the lowest priority present.
// RFC 2782: "A client MUST attempt to contact the target host with the
// lowest-numbered priority it can reach". Higher-numbered (backup) records
// are not used at all; the balancer's health handling works within the set.
func srvPreferred(records []*net.SRV) []*net.SRV {
	var out []*net.SRV
	for _, r := range records {
		if r == nil || r.Target == "." {
			continue
		}
		switch {
		case len(out) == 0 || r.Priority < out[0].Priority:
			out = []*net.SRV{r}
		case r.Priority == out[0].Priority:
			out = append(out, r)
		}
	}
	return out
}

// srvEndpoints converts an SRV answer, with the addresses its targets
// resolved to, into endpoints: one per record of the lowest priority, holding
// every address of its target at the record's port.
//
// Weights: RFC 2782 weights are relative within a priority, like Fulcrum's.
// When the largest exceeds attrs.MaxWeight, all are scaled down
// proportionally (keeping the ratios) instead of clamping only the large ones.
// A weight of 0 becomes 1: RFC 2782 gives such records "a very small chance
// of being selected", and 1 is the smallest weight the balancer has; when all
// weights are 0 every endpoint is equal.
//
// A single record whose target is "." means, per RFC 2782, "the service is
// decidedly not available at this domain": an authoritative empty set.
func srvEndpoints(records []*net.SRV, addrs map[string][]net.IPAddr) (eps []Endpoint, authoritativeEmpty bool, problems []string) {
	if len(records) == 1 && records[0] != nil && records[0].Target == "." {
		return nil, true, nil
	}
	preferred := srvPreferred(records)
	var maxW uint64
	for _, r := range preferred {
		maxW = max(maxW, uint64(r.Weight))
	}
	for _, r := range preferred {
		ips := addrs[r.Target]
		if len(ips) == 0 {
			problems = append(problems, fmt.Sprintf("target %s:%d skipped: it resolved to no address", r.Target, r.Port))
			continue
		}
		if r.Port == 0 {
			problems = append(problems, fmt.Sprintf("target %s:%d skipped: port 0, must be in [1, 65535]", r.Target, r.Port))
			continue
		}
		w := uint64(r.Weight)
		if maxW > uint64(attrs.MaxWeight) {
			w = w * uint64(attrs.MaxWeight) / maxW
		}
		ep := Endpoint{Weight: uint32(max(w, 1))}
		port := strconv.Itoa(int(r.Port))
		for _, ip := range ips {
			if a := net.JoinHostPort(ip.String(), port); !slices.Contains(ep.Addresses, a) {
				ep.Addresses = append(ep.Addresses, a)
			}
		}
		eps = append(eps, ep)
	}
	return eps, false, problems
}
