package balancer

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	grpcbalancer "google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fulcrum-lb/fulcrum/hedge"
	"github.com/fulcrum-lb/fulcrum/picker"
)

// grpcPicker adapts a picker.Picker to grpc-go: it picks through the
// chosen endpoint's pick_first picker and turns the RPC's end (DoneInfo)
// into an Outcome.
type grpcPicker struct {
	// Read-only after newGRPCPicker.
	p        *picker.Picker
	children []grpcbalancer.Picker
	mask     uint32 // failure codes, 1 << code
	// slots holds, per entry, what Pick reads besides the picker: one
	// array, two entries per cache line.
	slots []pickSlot
	// onRejected counts picks that every candidate's breaker refused.
	onRejected func()
	// onHedged learns the hedger of a hedged call's channel (hedging.go).
	onHedged func(*hedge.Hedger)
}

// pickSlot is one entry's: the SubConn its pick_first picker returned when
// the picker was built, and its Done cache.
type pickSlot struct {
	// ready is the wrapper of the entry's READY SubConn at construction
	// (nil: unknown) and sc what it wraps: a pick that returns ready hands
	// grpc-go sc without reading the wrapper (a likely cache miss at a
	// thousand endpoints).
	ready *subConn
	sc    grpcbalancer.SubConn
	// done caches the Done closure of the entry's last pick, reused while
	// the breaker admission is the same (picker.Token.Same); used for RPCs
	// whose duration is not timed (without the latency term, or not
	// sampled: picker/sample.go), a timed one's Done must carry its start
	// time.
	done atomic.Pointer[cachedDone]
}

type cachedDone struct {
	tok picker.Token
	fn  func(grpcbalancer.DoneInfo)
}

// newGRPCPicker builds the picker over p's entries, children being their
// pick_first pickers and ready their READY SubConns (nil, or nil entries:
// not known).
func newGRPCPicker(p *picker.Picker, children []grpcbalancer.Picker, ready []*subConn, mask uint32) *grpcPicker {
	gp := &grpcPicker{p: p, children: children, mask: mask, slots: make([]pickSlot, len(children))}
	for i, sc := range ready {
		if sc != nil {
			gp.slots[i].ready, gp.slots[i].sc = sc, sc.SubConn
		}
	}
	return gp
}

// Pick implements balancer.Picker. It takes no lock, never blocks and, in
// the steady state, does not allocate. An attempt of a hedged call (its
// context carries a hedge.Attempt) selects among the endpoints its call is
// not already on (selectAttempt); the rest of the pick is the same.
func (gp *grpcPicker) Pick(info grpcbalancer.PickInfo) (grpcbalancer.PickResult, error) {
	// One atomic load while no call of the process was ever hedged.
	var a hedge.Attempt
	hedged := hedge.InUse() && info.Ctx != nil
	if hedged {
		a, hedged = hedge.AttemptFrom(info.Ctx)
	}
	// Only an RPC with a deadline bounds its endpoint's latency while in
	// flight: one without may be a long-lived stream, and PickInfo does
	// not say which (grpc-go 1.85).
	bounded := false
	if info.Ctx != nil && gp.p.LatencyAware() {
		_, bounded = info.Ctx.Deadline()
	}
	var (
		i   int
		tok picker.Token
		err error
	)
	if hedged {
		i, tok, err = gp.selectAttempt(bounded, a)
		if errors.Is(err, picker.ErrNoOtherEndpoint) {
			// A status error ends the attempt at once, even wait-for-ready:
			// the interceptor sees the refusal in the call's state and waits
			// for the attempts already in flight.
			return grpcbalancer.PickResult{}, status.Errorf(codes.Unavailable, "%s: hedge not sent: %v", Name, err)
		}
	} else {
		i, tok, err = gp.p.SelectBounded(bounded)
	}
	if err != nil {
		if gp.onRejected != nil {
			gp.onRejected()
		}
		// A plain error: UNAVAILABLE for ordinary RPCs, wait-for-ready
		// RPCs wait for the next picker.
		return grpcbalancer.PickResult{}, fmt.Errorf("%s: %w", Name, err)
	}
	res, err := gp.children[i].Pick(info)
	if err != nil {
		gp.p.Abort(i, tok)
		return res, err
	}
	slot := &gp.slots[i]
	if sc, ok := res.SubConn.(*subConn); ok { // grpc-go wants its own back
		if sc == slot.ready {
			res.SubConn = slot.sc
		} else {
			res.SubConn = sc.SubConn
		}
	}
	if hedged {
		a.Call.Sent(a.N, gp.p.Entry(i).Endpoint)
	} else if res.Done == nil && tok.Shareable() {
		if c := slot.done.Load(); c != nil && c.tok.Same(tok) {
			res.Done = c.fn
			return res, nil
		}
		shared := tok.Shared()
		c := &cachedDone{tok: shared}
		c.fn = func(di grpcbalancer.DoneInfo) { gp.p.Finish(i, shared, classify(di, gp.mask)) }
		slot.done.Store(c)
		res.Done = c.fn
		return res, nil
	}
	d := donePool.Get().(*doneCall)
	d.gp, d.i, d.tok, d.child, d.call, d.n = gp, i, tok, res.Done, a.Call, a.N
	res.Done = d.fn
	return res, nil
}

// doneCall is the state of one RPC's Done when it cannot be shared (the
// RPC is timed and the latency term needs its start time, the child has
// its own Done, or the RPC is an attempt of a hedged call). Pooled:
// grpc-go calls Done exactly once per successful pick.
type doneCall struct {
	gp    *grpcPicker
	i     int
	tok   picker.Token
	child func(grpcbalancer.DoneInfo)
	call  *hedge.Call // the hedged call the RPC is attempt n of; nil: none
	n     int
	fn    func(grpcbalancer.DoneInfo) // d.done, bound once
}

var donePool sync.Pool

func init() {
	donePool.New = func() any {
		d := new(doneCall)
		d.fn = d.done
		return d
	}
}

func (d *doneCall) done(di grpcbalancer.DoneInfo) {
	gp, i, tok, child, call, n := d.gp, d.i, d.tok, d.child, d.call, d.n
	*d = doneCall{fn: d.fn}
	donePool.Put(d)
	o := classify(di, gp.mask)
	if call != nil && call.Ended(n) {
		// Cancelled because another attempt won: not the endpoint's
		// failure, and its duration only a lower bound of its latency (it
		// may raise the estimate, never lower it).
		o = picker.Outcome{Timing: picker.LowerBound}
	}
	gp.p.Finish(i, tok, o)
	if child != nil {
		child(di)
	}
}

// classify turns a finished RPC into an Outcome for the breaker and the
// latency estimate.
//
//   - Success, or an application error (any code not in failureCodes): a
//     working server answered; timed.
//   - A code in failureCodes: a failure; not timed (a server failing at
//     once is not fast).
//   - CANCELLED, DEADLINE_EXCEEDED: the caller gave up; no verdict unless
//     configured as failures, and the duration is a lower bound of the
//     latency, so a hung server cannot look fast.
//   - No error and nothing sent or received: grpc-go re-picks an RPC whose
//     transport was not ready; nothing was learnt.
//   - UNAVAILABLE with nothing received from the server: the stream was
//     refused before the server saw it (a GOAWAY from a server cycling its
//     connections, keepalive MaxConnectionAge; REFUSED_STREAM) or the
//     connection went away, which connectivity reports. grpc-go retries
//     such an attempt transparently ("unprocessed", stream.go shouldRetry)
//     after reporting it here: nothing was learnt (issue 21 defect g: it
//     tripped healthy endpoints' breakers). A server's own UNAVAILABLE
//     arrives in a HEADERS frame, so BytesReceived is set and it counts.
func classify(di grpcbalancer.DoneInfo, mask uint32) picker.Outcome {
	if di.Err == nil {
		if !di.BytesSent && !di.BytesReceived {
			return picker.Outcome{}
		}
		return picker.Outcome{Verdict: picker.Success, Timing: picker.Timed}
	}
	code := status.Code(di.Err)
	if code == codes.Unavailable && !di.BytesReceived {
		return picker.Outcome{}
	}
	failure := uint32(code) < 32 && mask&(1<<uint32(code)) != 0
	switch {
	case code == codes.Canceled, code == codes.DeadlineExceeded:
		if failure {
			return picker.Outcome{Verdict: picker.Failure, Timing: picker.LowerBound}
		}
		return picker.Outcome{Timing: picker.LowerBound}
	case failure:
		return picker.Outcome{Verdict: picker.Failure}
	}
	return picker.Outcome{Verdict: picker.Success, Timing: picker.Timed}
}
