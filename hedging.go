package fulcrum

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/internal/clock"
)

// HedgingPolicy configures WithHedging. Every zero field means its
// default, so HedgingPolicy{} hedges every unary method of the channel
// with at most 2 attempts, after an adaptive delay, within 5 % extra
// load plus 10 hedges per second. The common fields are those of fulcrumhttp's "hedging" object
// (package hedge defines them once, with their bounds).
type HedgingPolicy struct {
	// MaxAttempts is the number of attempts of one call, the first
	// included. Default 2, bounds [2, 5].
	MaxAttempts int
	// Delay is a fixed hedging delay. Default 0: adaptive, the
	// (100 - MaxExtraLoadPercent/4)th percentile of the latency of the
	// channel's recent calls (of the attempt that answered each: Finagle's
	// rule, aiming at about half the budget so that the other half rescues
	// bursts), never below MinDelay. Bounds [0, 1m].
	Delay time.Duration
	// MinDelay is the floor of the adaptive delay, and the least time a
	// call must have left before its deadline for a hedge to go. Default
	// 5ms, bounds [0, 1m].
	MinDelay time.Duration
	// MaxExtraLoadPercent caps hedges at this share of the channel's
	// calls over the last 10 seconds, plus MinHedgesPerSecond. Default 5,
	// bounds [0.1, 50].
	MaxExtraLoadPercent float64
	// MinHedgesPerSecond is the floor of the budget (a reserve of 10 s
	// worth). Default 10, bounds [0, 1000].
	MinHedgesPerSecond float64
	// Methods are the hedged methods, each a full method name
	// ("/pkg.Service/Method") or a service ("/pkg.Service/"). Default:
	// every unary method. List only methods that are safe to repeat.
	Methods []string
	// NonFatalStatusCodes: an attempt that ends with one of these does
	// not end the call; the next attempt goes at once (gRFC A6). Default
	// none: the first attempt to finish, whatever its status, wins.
	NonFatalStatusCodes []codes.Code
}

// WithHedging returns a DialOption that hedges the channel's unary calls:
// when a call has not finished after the delay, a second attempt goes to
// another endpoint and the first to answer wins; the others are cancelled.
// The weighted_least_request balancer sends each attempt to an endpoint
// none of the call's other attempts is in flight on, and does not count
// the cancelled losers against their endpoints. Streams are never hedged.
//
// An invalid policy makes every call fail with INVALID_ARGUMENT and the
// field's error ("fulcrum: hedging: maxAttempts: 9, must be in [2, 5]").
func WithHedging(p HedgingPolicy) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(newHedging(p, nil).intercept)
}

// hedging is the unary interceptor of WithHedging.
type hedging struct {
	// Read-only after newHedging.
	policy   hedge.Policy
	methods  []string
	nonFatal uint32 // 1 << code
	err      error
	clk      clock.Clock

	// hedgers holds one Hedger per channel (budget and delay are a
	// channel's), keyed weakly so that a closed channel's goes with it.
	hedgers sync.Map // weak.Pointer[grpc.ClientConn] -> *hedge.Hedger
	last    atomic.Pointer[lastHedger]
}

func newHedging(p HedgingPolicy, clk clock.Clock) *hedging {
	hp := hedge.Policy{
		MaxAttempts: p.MaxAttempts, Delay: config.Duration(p.Delay), MinDelay: config.Duration(p.MinDelay),
		MaxExtraLoadPercent: p.MaxExtraLoadPercent, MinHedgesPerSecond: p.MinHedgesPerSecond,
	}.WithDefaults()
	h := &hedging{policy: hp, methods: p.Methods, clk: clk}
	errs := []error{hp.Validate()}
	for i, m := range p.Methods {
		if !strings.HasPrefix(m, "/") || strings.Count(m, "/") != 2 {
			errs = append(errs, config.Invalid(fmt.Sprintf("methods[%d]", i), fmt.Sprintf("%q", m), `"/pkg.Service/Method" or "/pkg.Service/"`))
		}
	}
	for i, c := range p.NonFatalStatusCodes {
		if c == codes.OK || c > 31 {
			errs = append(errs, config.Invalid(fmt.Sprintf("nonFatalStatusCodes[%d]", i), c, "a non-OK gRPC status code"))
			continue
		}
		h.nonFatal |= 1 << uint32(c)
	}
	h.err = config.Prefix("fulcrum: hedging: ", errors.Join(errs...))
	return h
}

// hedged reports whether method is hedged.
func (h *hedging) hedged(method string) bool {
	if len(h.methods) == 0 {
		return true
	}
	for _, m := range h.methods {
		if m == method || (strings.HasSuffix(m, "/") && strings.HasPrefix(method, m)) {
			return true
		}
	}
	return false
}

func (h *hedging) hedgerOf(cc *grpc.ClientConn) *hedge.Hedger {
	// The channel of the last call, checked through its weak pointer
	// (weak.Make takes a runtime lock; Value does not).
	if l := h.last.Load(); l != nil && l.cc.Value() == cc {
		return l.h
	}
	k := weak.Make(cc)
	v, ok := h.hedgers.Load(k)
	if !ok {
		var loaded bool
		v, loaded = h.hedgers.LoadOrStore(k, hedge.New(h.policy, hedge.Options{Clock: h.clk}))
		if !loaded {
			runtime.AddCleanup(cc, func(k weak.Pointer[grpc.ClientConn]) { h.hedgers.Delete(k) }, k)
		}
	}
	hd := v.(*hedge.Hedger)
	h.last.Store(&lastHedger{cc: k, h: hd})
	return hd
}

type lastHedger struct {
	cc weak.Pointer[grpc.ClientConn]
	h  *hedge.Hedger
}

// hasCallerMemory reports whether opts hold an option hedge attempts must
// not share: Header, Trailer, Peer (they write the caller's memory) or
// OnFinish (called once per call).
func hasCallerMemory(opts []grpc.CallOption) bool {
	for _, o := range opts {
		switch o.(type) {
		case grpc.HeaderCallOption, grpc.TrailerCallOption, grpc.PeerCallOption, grpc.OnFinishCallOption:
			return true
		}
	}
	return false
}

// attemptResult is one attempt's reply and what grpc-go reported of it.
// Each hedge has its own reply message and its own header, trailer and
// peer, so that attempts in flight together never write the same memory.
type attemptResult struct {
	reply           proto.Message
	err             error
	header, trailer metadata.MD
	peer            peer.Peer
}

func (h *hedging) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if h.err != nil {
		return status.Error(codes.InvalidArgument, h.err.Error())
	}
	rm, ok := reply.(proto.Message)
	if !ok || !h.hedged(method) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	// Attempt 0 writes into the caller's reply, header, trailer and peer
	// (hedge.Do runs it on this goroutine: it has returned when Do does);
	// each hedge gets its own, and the winner's are copied over the
	// caller's. OnFinish is called once, with the call's result.
	var (
		headers, trailers []*metadata.MD
		peers             []*peer.Peer
		onFinish          []func(error)
		base, first       = opts, opts // without those options: no copy
	)
	if hasCallerMemory(opts) {
		base, first = make([]grpc.CallOption, 0, len(opts)+3), make([]grpc.CallOption, 0, len(opts))
		for _, o := range opts {
			switch o := o.(type) {
			case grpc.HeaderCallOption:
				headers = append(headers, o.HeaderAddr)
			case grpc.TrailerCallOption:
				trailers = append(trailers, o.TrailerAddr)
			case grpc.PeerCallOption:
				peers = append(peers, o.PeerAddr)
			case grpc.OnFinishCallOption:
				onFinish = append(onFinish, o.OnFinish)
				continue
			default:
				base = append(base, o)
			}
			first = append(first, o)
		}
	}
	// The type is read now: once attempt 0 runs, rm is its to write.
	mt := rm.ProtoReflect().Type()
	try := func(actx context.Context, n int) *attemptResult {
		if n == 0 {
			return &attemptResult{reply: rm, err: invoker(actx, method, req, reply, cc, first...)}
		}
		r := &attemptResult{reply: mt.New().Interface()}
		aopts := append(base[:len(base):len(base)], grpc.Header(&r.header), grpc.Trailer(&r.trailer), grpc.Peer(&r.peer))
		r.err = invoker(actx, method, req, r.reply, cc, aopts...)
		return r
	}
	judge := func(r *attemptResult) hedge.Judgement {
		code := status.Code(r.err)
		return hedge.Judgement{
			Final: r.err == nil || h.nonFatal&(1<<uint32(code)) == 0,
			// A success's duration is the latency; a deadline's a lower
			// bound of it.
			Timed: r.err == nil || code == codes.DeadlineExceeded,
		}
	}
	r, release := hedge.Do(ctx, h.hedgerOf(cc), try, judge, func(*attemptResult) {})
	release()
	if r.reply != rm {
		// A hedge won: attempt 0 has returned, nothing writes the
		// caller's memory any more.
		for _, p := range headers {
			*p = r.header
		}
		for _, p := range trailers {
			*p = r.trailer
		}
		for _, p := range peers {
			*p = r.peer
		}
		proto.Reset(rm)
		if r.err == nil {
			// grpc-go's codec unmarshals into a reset message: so does
			// this.
			proto.Merge(rm, r.reply)
		}
	}
	for _, f := range onFinish {
		f(r.err)
	}
	return r.err
}
