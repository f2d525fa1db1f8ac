package consul

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/fulcrum-lb/fulcrum/attrs"
	"github.com/fulcrum-lb/fulcrum/resolver"
)

// Defaults of RegisterOptions. Consul reaps critical services at most once
// a minute ("The minimum timeout is 1 minute"), so a shorter
// DeregisterCriticalServiceAfter would only look shorter.
const (
	DefaultCheckInterval       = 10 * time.Second
	DefaultCheckTimeout        = 5 * time.Second
	DefaultDeregisterAfter     = time.Minute
	DefaultRecheckInterval     = 30 * time.Second
	defaultRegisterHTTPTimeout = 5 * time.Second
)

// RegisterOptions configures Register. The zero value is ready to use.
type RegisterOptions struct {
	// ID of the instance, unique on its agent. Default "<name>-<host:port>".
	ID string
	// Tags of the instance, for clients' tag filters.
	Tags []string
	// WarningWeight is the instance's weight while a check is warning
	// (Weights.Warning); the endpoint's Weight is Weights.Passing. Default 1.
	WarningWeight uint32
	// HealthService is the service name the agent's gRPC health check asks
	// grpc.health.v1.Health/Check about; "" means the whole server.
	HealthService string
	// CheckTLS makes the agent's gRPC check use TLS.
	CheckTLS bool
	// CheckInterval and CheckTimeout of the agent's gRPC health check.
	// Defaults 10s and 5s; both > 0, CheckTimeout <= CheckInterval.
	CheckInterval, CheckTimeout time.Duration
	// DeregisterCriticalServiceAfter: the agent removes the instance after
	// its check has been critical this long (a process that died without
	// deregistering). Default 1m; must be >= 0.
	DeregisterCriticalServiceAfter time.Duration
	// RecheckInterval is how often the registration asks the agent whether
	// it still knows the instance, and registers it again if it does not
	// (an agent restarted without its state). Jittered by ±10%. Default 30s;
	// must be >= 0.
	RecheckInterval time.Duration
	// Timeout bounds each request to the agent. Default 5s; must be >= 0.
	Timeout time.Duration
	// Namespace and Partition (Consul Enterprise).
	Namespace, Partition string
	// ZoneMeta is the service meta key the endpoint's zone (Endpoint.Zone,
	// or its metadata "zone") is registered under: the key the clients'
	// Options.ZoneMeta reads. Default DefaultZoneMeta.
	ZoneMeta string
}

// Registration keeps one instance registered with the local agent. Close
// deregisters it.
type Registration struct {
	agent *api.Agent
	reg   *api.AgentServiceRegistration
	opts  RegisterOptions

	cancel   context.CancelFunc
	done     chan struct{} // closed when run has returned
	closeErr error         // written by run before done is closed
	close    func() error
}

// Register registers ep (its first address) as an instance of service name
// with the agent client talks to, under a gRPC health check run by the
// agent, and keeps checking that the agent still has it until Close is
// called or ctx is done; either one deregisters it. The caller keeps
// ownership of client. Register fails if the first registration fails.
func Register(ctx context.Context, client *api.Client, name string, ep resolver.Endpoint, opts RegisterOptions) (*Registration, error) {
	if client == nil {
		return nil, errors.New("consul: client: nil, must be non-nil")
	}
	if err := validService(name); err != nil {
		return nil, err
	}
	reg, opts, err := registration(name, ep, opts)
	if err != nil {
		return nil, err
	}
	r := &Registration{agent: client.Agent(), reg: reg, opts: opts, done: make(chan struct{})}
	if err := r.register(ctx); err != nil {
		return nil, err
	}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.run(ctx)
	r.close = sync.OnceValue(func() error {
		r.cancel()
		<-r.done
		return r.closeErr
	})
	return r, nil
}

// registration validates the arguments of Register and builds the agent
// request.
func registration(name string, ep resolver.Endpoint, opts RegisterOptions) (*api.AgentServiceRegistration, RegisterOptions, error) {
	if len(ep.Addresses) == 0 {
		return nil, opts, errors.New("consul: addresses: [], must hold the instance's host:port")
	}
	host, portStr, err := net.SplitHostPort(ep.Addresses[0])
	port, perr := strconv.Atoi(portStr)
	if err != nil || host == "" || perr != nil || port < 1 || port > 65535 {
		return nil, opts, fmt.Errorf("consul: address: %q, must be host:port with a port in [1, 65535]", ep.Addresses[0])
	}
	for d, v := range map[*time.Duration]time.Duration{
		&opts.CheckInterval: DefaultCheckInterval, &opts.CheckTimeout: DefaultCheckTimeout,
		&opts.DeregisterCriticalServiceAfter: DefaultDeregisterAfter, &opts.RecheckInterval: DefaultRecheckInterval,
		&opts.Timeout: defaultRegisterHTTPTimeout,
	} {
		if *d == 0 {
			*d = v
		}
	}
	switch {
	case opts.CheckInterval < 0:
		return nil, opts, fmt.Errorf("consul: checkInterval: %v, must be > 0", opts.CheckInterval)
	case opts.CheckTimeout < 0 || opts.CheckTimeout > opts.CheckInterval:
		return nil, opts, fmt.Errorf("consul: checkTimeout: %v, must be in (0, checkInterval (%v)]", opts.CheckTimeout, opts.CheckInterval)
	case opts.DeregisterCriticalServiceAfter < 0:
		return nil, opts, fmt.Errorf("consul: deregisterCriticalServiceAfter: %v, must be >= 0", opts.DeregisterCriticalServiceAfter)
	case opts.RecheckInterval < 0:
		return nil, opts, fmt.Errorf("consul: recheckInterval: %v, must be >= 0", opts.RecheckInterval)
	case opts.Timeout < 0:
		return nil, opts, fmt.Errorf("consul: timeout: %v, must be >= 0", opts.Timeout)
	case ep.Weight > 65535 || opts.WarningWeight > 65535:
		return nil, opts, fmt.Errorf("consul: weight: %d (warning %d), must be <= 65535", ep.Weight, opts.WarningWeight)
	}
	if opts.ID == "" {
		opts.ID = name + "-" + ep.Addresses[0]
	}
	if err := validService(opts.ID); err != nil {
		return nil, opts, fmt.Errorf("consul: id: %q, must not contain '/', '?', '#', '%%' or spaces", opts.ID)
	}
	meta, err := registrationMeta(ep, opts.ZoneMeta)
	if err != nil {
		return nil, opts, err
	}
	weights := &api.AgentWeights{Passing: int(max(ep.Weight, 1)), Warning: int(max(opts.WarningWeight, 1))}
	check := ep.Addresses[0]
	if opts.HealthService != "" {
		check += "/" + opts.HealthService
	}
	return &api.AgentServiceRegistration{
		ID:      opts.ID,
		Name:    name,
		Tags:    slices.Clone(opts.Tags),
		Address: host,
		Port:    port,
		Meta:    meta,
		Weights: weights,
		Check: &api.AgentServiceCheck{
			CheckID:                        "service:" + opts.ID,
			Name:                           "gRPC health of " + ep.Addresses[0],
			GRPC:                           check,
			GRPCUseTLS:                     opts.CheckTLS,
			Interval:                       opts.CheckInterval.String(),
			Timeout:                        opts.CheckTimeout.String(),
			DeregisterCriticalServiceAfter: opts.DeregisterCriticalServiceAfter.String(),
		},
		Namespace: opts.Namespace,
		Partition: opts.Partition,
	}, opts, nil
}

// registrationMeta is the service meta of ep: its metadata, with its zone
// under zoneMeta (default DefaultZoneMeta) rather than attrs.ZoneKey.
func registrationMeta(ep resolver.Endpoint, zoneMeta string) (map[string]string, error) {
	if zoneMeta == "" {
		zoneMeta = DefaultZoneMeta
	}
	if err := checkZoneMeta(zoneMeta); err != nil {
		return nil, err
	}
	zone, err := ep.ZoneOf()
	if err != nil {
		return nil, fmt.Errorf("consul: %v", err)
	}
	meta := maps.Clone(ep.Metadata)
	if zone == "" {
		return meta, nil
	}
	if meta == nil {
		meta = make(map[string]string, 1)
	}
	delete(meta, attrs.ZoneKey)
	meta[zoneMeta] = zone
	return meta, nil
}

// ID returns the instance's service ID.
func (r *Registration) ID() string { return r.reg.ID }

// Close deregisters the instance and waits until the registration's
// goroutine has exited. It returns the error of the deregistration, if any
// (an instance the agent no longer knows is not an error); later calls
// return the same.
func (r *Registration) Close() error { return r.close() }

func (r *Registration) register(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	if err := r.agent.ServiceRegisterOpts(r.reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(rctx)); err != nil {
		return fmt.Errorf("consul: registering %q with the agent: %w", r.reg.ID, err)
	}
	logger.Infof("[consul %p] registered %q as an instance of %q", r, r.reg.ID, r.reg.Name)
	return nil
}

// known asks the agent whether it still has the instance.
func (r *Registration) known(ctx context.Context) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	q := &api.QueryOptions{Namespace: r.opts.Namespace, Partition: r.opts.Partition}
	_, _, err := r.agent.Service(r.reg.ID, q.WithContext(rctx))
	if se := (api.StatusError{}); errors.As(err, &se) && se.Code == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// run re-registers the instance whenever the agent has lost it, until ctx is
// done; then it deregisters.
func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	for {
		d := r.opts.RecheckInterval
		d += time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
		if !resolver.Sleep(ctx, nil, d) {
			break
		}
		known, err := r.known(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			// The agent is down or restarting; once it answers and has
			// lost the instance, the next round puts it back.
			logger.Warningf("[consul %p] asking the agent about %q: %v", r, r.reg.ID, err)
		case !known:
			logger.Warningf("[consul %p] the agent lost %q; registering it again", r, r.reg.ID)
			if err := r.register(ctx); err != nil && ctx.Err() == nil {
				logger.Warningf("[consul %p] %v", r, err)
			}
		}
	}
	// Deregister even though ctx is done: this is the cleanup of its end.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Timeout)
	defer cancel()
	q := &api.QueryOptions{Namespace: r.opts.Namespace, Partition: r.opts.Partition}
	err := r.agent.ServiceDeregisterOpts(r.reg.ID, q.WithContext(dctx))
	if se := (api.StatusError{}); errors.As(err, &se) && se.Code == http.StatusNotFound {
		err = nil
	}
	if err != nil {
		r.closeErr = fmt.Errorf("consul: deregistering %q: %w; the agent removes it after its check has been critical for %v", r.reg.ID, err, r.opts.DeregisterCriticalServiceAfter)
		logger.Warningf("[consul %p] %v", r, r.closeErr)
		return
	}
	logger.Infof("[consul %p] deregistered %q", r, r.reg.ID)
}
