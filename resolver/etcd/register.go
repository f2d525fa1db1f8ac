package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

const defaultTTL = 10 * time.Second

// RegisterOptions configures Register. The zero value is ready to use.
type RegisterOptions struct {
	// Prefix is the key prefix of all services, as in Options.Prefix.
	// Default DefaultPrefix.
	Prefix string
	// ID names the instance: its key is Prefix/<name>/<ID>. Default the
	// endpoint's first address; must not contain "/".
	ID string
	// TTL of the lease that holds the key: after this long without a
	// keep-alive (the process died, or etcd was unreachable) etcd deletes
	// the key. Rounded up to whole seconds, and etcd raises it to its own
	// minimum (about 2s with default settings). Default 10s; must be >= 0.
	TTL time.Duration
	// Timeout bounds each request to etcd. Default 5s; must be >= 0.
	Timeout time.Duration
}

// Registration keeps one instance key alive in etcd. Close removes it.
type Registration struct {
	cli     *clientv3.Client
	key     string
	value   string
	ttl     int64 // seconds
	timeout time.Duration

	cancel   context.CancelFunc
	done     chan struct{} // closed when run has returned
	closeErr error         // written by run before done is closed
	close    func() error
}

// Register puts the key Prefix/<name>/<ID> with ep as its JSON value under a
// lease, and keeps the lease alive until Close is called or ctx is done;
// either one revokes the lease, which deletes the key at once. If the lease
// is lost (etcd was unreachable for longer than TTL, or someone revoked it)
// Register's goroutine grants a new one and puts the key again, retrying
// with backoff until it succeeds or the registration ends.
//
// Register returns an error if the first put fails; the caller decides
// whether to retry or to serve unregistered. The caller keeps ownership of
// cli and closes it after Close.
func Register(ctx context.Context, cli *clientv3.Client, name string, ep resolver.Endpoint, opts RegisterOptions) (*Registration, error) {
	if cli == nil {
		return nil, errors.New("etcd: client: nil, must be non-nil")
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	v, err := value{Addresses: ep.Addresses, Weight: ep.Weight, Metadata: ep.Metadata, Zone: ep.Zone}.endpoint()
	if err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.ID == "" {
		opts.ID = v.Addresses[0]
	}
	if strings.Contains(opts.ID, "/") {
		return nil, fmt.Errorf("etcd: id: %q, must not contain \"/\"", opts.ID)
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("etcd: ttl: %v, must be >= 0", opts.TTL)
	}
	if opts.TTL == 0 {
		opts.TTL = defaultTTL
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("etcd: timeout: %v, must be >= 0", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	b, err := json.Marshal(value{Addresses: v.Addresses, Weight: v.Weight, Metadata: v.Metadata, Zone: v.Zone})
	if err != nil {
		return nil, fmt.Errorf("etcd: encoding %v: %v", ep, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	r := &Registration{
		cli:     cli,
		key:     strings.TrimSuffix(opts.Prefix, "/") + "/" + name + "/" + opts.ID,
		value:   string(b),
		ttl:     int64(math.Ceil(opts.TTL.Seconds())),
		timeout: opts.Timeout,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	lease, ka, err := r.register(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go r.run(ctx, lease, ka)
	r.close = sync.OnceValue(func() error {
		r.cancel()
		<-r.done
		return r.closeErr
	})
	return r, nil
}

// Key returns the etcd key of the instance.
func (r *Registration) Key() string { return r.key }

// Close revokes the lease, which deletes the key, and waits until the
// registration's goroutine has exited. It returns the error of the revoke,
// if any; later calls return the same.
func (r *Registration) Close() error { return r.close() }

// register grants a lease, puts the key under it and starts keeping it
// alive for as long as ctx lives.
func (r *Registration) register(ctx context.Context) (clientv3.LeaseID, <-chan *clientv3.LeaseKeepAliveResponse, error) {
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	g, err := r.cli.Grant(rctx, r.ttl)
	if err != nil {
		return 0, nil, fmt.Errorf("etcd: granting a lease for %q: %w", r.key, err)
	}
	if _, err := r.cli.Put(rctx, r.key, r.value, clientv3.WithLease(g.ID)); err != nil {
		r.revoke(ctx, g.ID)
		return 0, nil, fmt.Errorf("etcd: putting %q: %w", r.key, err)
	}
	ka, err := r.cli.KeepAlive(ctx, g.ID)
	if err != nil {
		r.revoke(ctx, g.ID)
		return 0, nil, fmt.Errorf("etcd: keeping lease %x of %q alive: %w", g.ID, r.key, err)
	}
	logger.Infof("[etcd %p] registered %q with lease %x (ttl %ds)", r, r.key, g.ID, g.TTL)
	return g.ID, ka, nil
}

// revoke revokes lease, even after ctx is done (it is the cleanup of ctx's
// end), within the registration's timeout. Revoking a lease that has
// already expired is not an error: the key is gone either way.
func (r *Registration) revoke(ctx context.Context, lease clientv3.LeaseID) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	if _, err := r.cli.Revoke(rctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("etcd: revoking lease %x of %q: %w", lease, r.key, err)
	}
	return nil
}

// run keeps the registration alive until ctx is done, then revokes it.
func (r *Registration) run(ctx context.Context, lease clientv3.LeaseID, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(r.done)
	bo := resolver.Backoff{Min: minBackoff, Max: time.Duration(r.ttl) * time.Second / 2}
	for {
		// The etcd client closes ka when the lease is gone (expired or
		// revoked), when it got no keep-alive answer for a whole TTL, or
		// when ctx is done.
		for range ka {
		}
		if ctx.Err() != nil {
			break
		}
		if r.cli.Ctx().Err() != nil {
			break
		}
		logger.Warningf("[etcd %p] lost lease %x of %q; registering again", r, lease, r.key)
		lease = 0
		for {
			l, k, err := r.register(ctx)
			if err == nil {
				bo.Reset()
				lease, ka = l, k
				break
			}
			if ctx.Err() != nil {
				break
			}
			logger.Warningf("[etcd %p] %v", r, err)
			if r.cli.Ctx().Err() != nil || !resolver.Sleep(ctx, nil, bo.Next()) {
				break
			}
		}
		if lease == 0 {
			break
		}
	}
	switch {
	case lease == 0:
		// Never re-registered: there is no key to delete.
	case r.cli.Ctx().Err() != nil:
		r.closeErr = fmt.Errorf("etcd: client closed before the registration; %q is deleted when lease %x expires", r.key, lease)
		logger.Warningf("[etcd %p] %v", r, r.closeErr)
	default:
		r.closeErr = r.revoke(ctx, lease)
	}
}
