// Package healthprobe actively probes each connection with grpc.health.v1.Health/Check and reports a healthy/unhealthy verdict with hysteresis.
package healthprobe

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/balancer"
)

// Bounds enforced by Config.Validate.
const (
	minInterval = 10 * time.Millisecond
	// maxInterval keeps Interval*(1+Jitter) far from time.Duration overflow; a
	// probe less often than hourly detects nothing in time anyway.
	maxInterval = time.Hour
	minTimeout  = time.Millisecond
	maxJitter   = 0.5
)

// Config configures the prober of one connection. The zero value is not
// valid: start from DefaultConfig and change what you need.
type Config struct {
	// Service is the service name sent in HealthCheckRequest. Default "",
	// which asks about the server as a whole (gRPC health checking protocol).
	// A name the server does not know fails every probe (NOT_FOUND).
	Service string
	// Interval is the wait between the end of one probe and the start of the
	// next, before jitter. Probes never overlap. Default 5s; 10ms to 1h.
	Interval time.Duration
	// Timeout bounds one probe: a probe without an answer by then fails.
	// Default 1s; at least 1ms and at most Interval, so that a hung server
	// cannot stretch the probe period to more than twice the interval.
	Timeout time.Duration
	// Jitter spreads the waits: each wait is drawn uniformly from
	// Interval*(1-Jitter) to Interval*(1+Jitter), so that clients started
	// together do not probe a server in lockstep. Default 0.2; 0 to 0.5
	// (above 0.5 waits could approach zero and probes run back to back).
	Jitter float64
	// UnhealthyThreshold is the number of consecutive failed probes that mark
	// a healthy connection unhealthy. Default 3; at least 1.
	UnhealthyThreshold int
	// HealthyThreshold is the number of consecutive successful probes that
	// mark an unhealthy connection healthy again. Default 2; at least 1.
	HealthyThreshold int
	// UnimplementedIsHealthy says what a server without the health service
	// (status UNIMPLEMENTED) is: true counts it as a success and logs one
	// warning per prober, as grpc-go's own client health check does; false
	// counts it as a failure. Default true.
	UnimplementedIsHealthy bool
}

// DefaultConfig returns the defaults documented on each Config field.
func DefaultConfig() Config {
	return Config{
		Interval:               5 * time.Second,
		Timeout:                time.Second,
		Jitter:                 0.2,
		UnhealthyThreshold:     3,
		HealthyThreshold:       2,
		UnimplementedIsHealthy: true,
	}
}

// Validate reports every field outside its documented bounds. Field names in
// the errors are the JSON names that UnmarshalJSON reads.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, constraint string) {
		errs = append(errs, fmt.Errorf("healthprobe: %s: %v, must be %s", field, value, constraint))
	}
	if c.Interval < minInterval || c.Interval > maxInterval {
		bad("interval", c.Interval, fmt.Sprintf("between %v and %v", minInterval, maxInterval))
	}
	if c.Timeout < minTimeout {
		bad("timeout", c.Timeout, fmt.Sprintf(">= %v", minTimeout))
	} else if c.Timeout > c.Interval {
		bad("timeout", c.Timeout, fmt.Sprintf("<= interval (%v)", c.Interval))
	}
	// "!(x >= 0 && x <= max)" so that NaN is rejected too.
	if !(c.Jitter >= 0 && c.Jitter <= maxJitter) {
		bad("jitter", c.Jitter, fmt.Sprintf("between 0 and %v", maxJitter))
	}
	if c.UnhealthyThreshold < 1 {
		bad("unhealthyThreshold", c.UnhealthyThreshold, ">= 1")
	}
	if c.HealthyThreshold < 1 {
		bad("healthyThreshold", c.HealthyThreshold, ">= 1")
	}
	return errors.Join(errs...)
}

// UnmarshalJSON reads the service-config form of Config:
//
//	{"service": "", "interval": "5s", "timeout": "1s", "jitter": 0.2,
//	 "unhealthyThreshold": 3, "healthyThreshold": 2, "unimplementedIsHealthy": true}
//
// Durations are strings as time.ParseDuration reads them (which covers the
// protobuf JSON form "1.5s"). Fields absent from the input keep their current
// value, so unmarshal into DefaultConfig() to get defaults. Unknown fields are
// ignored. It does not call Validate.
func (c *Config) UnmarshalJSON(b []byte) error {
	var in struct {
		Service                *string  `json:"service"`
		Interval               *string  `json:"interval"`
		Timeout                *string  `json:"timeout"`
		Jitter                 *float64 `json:"jitter"`
		UnhealthyThreshold     *int     `json:"unhealthyThreshold"`
		HealthyThreshold       *int     `json:"healthyThreshold"`
		UnimplementedIsHealthy *bool    `json:"unimplementedIsHealthy"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("healthprobe: %v", err)
	}
	out := *c
	duration := func(field string, s *string, dst *time.Duration) error {
		if s == nil {
			return nil
		}
		d, err := time.ParseDuration(*s)
		if err != nil {
			return fmt.Errorf("healthprobe: %s: %q, must be a duration such as \"5s\"", field, *s)
		}
		*dst = d
		return nil
	}
	if err := duration("interval", in.Interval, &out.Interval); err != nil {
		return err
	}
	if err := duration("timeout", in.Timeout, &out.Timeout); err != nil {
		return err
	}
	if in.Service != nil {
		out.Service = *in.Service
	}
	if in.Jitter != nil {
		out.Jitter = *in.Jitter
	}
	if in.UnhealthyThreshold != nil {
		out.UnhealthyThreshold = *in.UnhealthyThreshold
	}
	if in.HealthyThreshold != nil {
		out.HealthyThreshold = *in.HealthyThreshold
	}
	if in.UnimplementedIsHealthy != nil {
		out.UnimplementedIsHealthy = *in.UnimplementedIsHealthy
	}
	*c = out
	return nil
}

// Start begins probing sc, which should be READY, with cfg, and calls
// onChange(healthy, reason) once after the first probe completes, whatever
// its result (the first probe fires at once, not one interval later), and
// then whenever the verdict changes. An invalid cfg is logged as an error and
// replaced by DefaultConfig(); validate it when parsing.
//
// There is one probe loop per SubConn, never two: a second Start on the same
// SubConn joins the running loop, receives its current verdict as soon as
// there is one, and its cfg governs the shared loop from the next probe on
// (the most recently started listener's cfg wins until it stops).
//
// grpc-go cancels the loop by itself when sc leaves READY or is shut down: no
// probe is sent and no onChange call begins after that (one already running
// completes). Call Start again once sc is READY again.
//
// onChange runs on the probe goroutine, never concurrently with itself for
// one Start. stop is idempotent; when it returns onChange will not be called
// again, and if this was the SubConn's last listener the probe goroutine has
// exited. stop therefore waits for a running onChange to return: do not call
// stop from inside onChange, nor while holding a lock that onChange takes.
func Start(sc balancer.SubConn, cfg Config, onChange func(healthy bool, reason string)) (stop func()) {
	return start(sc, cfg, onChange, nil)
}

func start(sc balancer.SubConn, cfg Config, onChange func(healthy bool, reason string), observe func(Probe)) (stop func()) {
	if err := cfg.Validate(); err != nil {
		logger.Errorf("[healthprobe %v] invalid config, using defaults: %v", sc, err)
		cfg = DefaultConfig()
	}
	if onChange == nil {
		onChange = func(bool, string) {}
	}
	pr, unref := sc.GetOrBuildProducer(producerBuilderSingleton)
	p := pr.(*producer)
	l := &listener{cfg: cfg, onChange: onChange, onProbe: observe}
	p.register(l)
	return sync.OnceFunc(func() {
		// Taking l.mu waits out an onChange call in progress; afterwards the
		// loop sees stopped and skips l.
		l.mu.Lock()
		l.stopped = true
		l.mu.Unlock()
		p.unregister(l)
		// Dropping the last reference makes grpc-go call p.close, which
		// cancels the loop.
		unref()
		if done := p.closedDone(); done != nil {
			<-done
		}
	})
}
