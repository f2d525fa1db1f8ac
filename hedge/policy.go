// Package hedge sends hedged requests for both of Fulcrum's transports:
// after a delay close to the tail of normal latency, a second copy of a
// request goes to another endpoint and the first answer wins ("The Tail
// at Scale", Dean and Barroso, CACM 2013; gRFC A6 hedgingPolicy; Finagle's
// BackupRequestFilter).
//
// It knows no transport. It owns the policy (Policy), the budget that
// caps hedges to a share of requests (Budget, also the HTTP transport's
// retry budget), the adaptive delay (Delayer), the state of one call that
// the balancer reads to send each attempt elsewhere (Call) and the loop
// that runs a call's attempts (Do). The gRPC interceptor (package fulcrum)
// and the HTTP transport (package fulcrumhttp) supply one attempt and
// the rule that says which result is final.
package hedge

import (
	"errors"
	"time"

	"github.com/fulcrum-lb/fulcrum/config"
)

// Defaults of Policy. A zero field means its default.
const (
	DefaultMaxAttempts         = 2
	DefaultMinDelay            = 5 * time.Millisecond
	DefaultMaxExtraLoadPercent = 5.0
	DefaultMinHedgesPerSecond  = 10.0
)

// Policy is the transport-neutral hedging configuration: the JSON object
// "hedging" of fulcrumhttp, and the common part of fulcrum.HedgingPolicy.
// Every zero field means its default, so Policy{} is the default policy.
type Policy struct {
	// MaxAttempts is the number of attempts of one call, the first
	// included. Default 2, bounds [2, 5] (gRFC A6 caps maxAttempts at 5).
	MaxAttempts int `json:"maxAttempts"`
	// Delay is a fixed hedging delay: the next attempt goes this long
	// after the previous one. Default 0: adaptive, the (100 -
	// MaxExtraLoadPercent/4)th percentile (98.75th for 5) of the latency
	// of recent calls' answering attempts, which spends about half of the
	// budget on the steady tail (see Delayer), never below MinDelay.
	// Bounds [0, 1m].
	Delay config.Duration `json:"delay"`
	// MinDelay is the floor of the adaptive delay, and the least time a
	// call must have left before its deadline for a hedge to be sent.
	// Default 5ms, bounds [0, 1m].
	MinDelay config.Duration `json:"minDelay"`
	// MaxExtraLoadPercent is the budget: hedges may add at most this share
	// of the calls of the last 10 seconds, plus MinHedgesPerSecond; the
	// adaptive delay is the (100 - MaxExtraLoadPercent/4)th percentile of
	// recent latencies. Default 5, bounds [0.1, 50].
	MaxExtraLoadPercent float64 `json:"maxExtraLoadPercent"`
	// MinHedgesPerSecond is the floor of the budget (a reserve of 10
	// seconds' worth), so that a client sending few calls can still hedge
	// and a burst of calls stuck on a hung instance can all be rescued.
	// Default 10 (Finagle's retry budget floor, and the HTTP retry
	// budget's), bounds [0, 1000] (0 means the default).
	MinHedgesPerSecond float64 `json:"minHedgesPerSecond"`
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MinDelay == 0 {
		p.MinDelay = config.Duration(DefaultMinDelay)
	}
	if p.MaxExtraLoadPercent == 0 {
		p.MaxExtraLoadPercent = DefaultMaxExtraLoadPercent
	}
	if p.MinHedgesPerSecond == 0 {
		p.MinHedgesPerSecond = DefaultMinHedgesPerSecond
	}
	return p
}

// Validate reports every field outside its bounds, each as "<field>:
// <value>, must be <constraint>" with the field's JSON name. Call it on
// WithDefaults' result.
func (p Policy) Validate() error {
	return errors.Join(
		// "maxAttempts ... MUST be greater than 1 ... values greater than 5
		// are treated as 5" - gRFC A6; here above 5 is an error.
		config.IntIn("maxAttempts", p.MaxAttempts, 2, 5),
		config.DurationIn("delay", p.Delay, 0, time.Minute),
		config.DurationIn("minDelay", p.MinDelay, 0, time.Minute),
		config.FloatIn("maxExtraLoadPercent", p.MaxExtraLoadPercent, 0.1, 50),
		config.FloatIn("minHedgesPerSecond", p.MinHedgesPerSecond, 0, 1000),
	)
}
