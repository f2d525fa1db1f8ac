package bench

import (
	"net/http"
	"time"
)

// httpScenario is one fleet behaviour of the HTTP benchmark. As in the
// gRPC scenarios, event times scale with the measured duration d so that
// a smoke run still goes through every phase, and the faulty backend is
// always b0.
type httpScenario struct {
	name    string
	title   string
	models  string
	notes   string
	n       int
	weights []uint32 // per backend; nil: none set
	fault   bool     // gets a latency-over-time chart
	// post sends POST /work with a body and a unique X-Req-Id, without
	// an Idempotency-Key (not safe to repeat once written), instead of
	// GET /work; the servers count POSTs received more than once.
	post   bool
	events func(bs []*httpBackend, d time.Duration) []event
}

// httpScenarios lists every HTTP scenario in report order.
func httpScenarios() []httpScenario {
	return []httpScenario{
		{
			name:   "homogeneous",
			title:  "Homogeneous",
			models: "4 equal backends (3ms + Exp(2ms) per request); the baseline every other scenario is compared with.",
			n:      4,
		},
		{
			name:   "one-slow",
			title:  "One backend 10x slower",
			models: "A backend on a noisy or degraded host: backend 0 serves every request 10x slower (mean 50ms) for the whole run; its /healthz still answers at once.",
			n:      4,
			events: func(bs []*httpBackend, d time.Duration) []event {
				bs[0].setSlow(10) // before the warmup too: a standing condition
				return nil
			},
		},
		{
			name:   "fast-fail",
			title:  "One backend failing fast",
			models: "A backend whose dependency is down: from 15% of the run backend 0 answers every request with 503 at once, while its /healthz stays 200.",
			n:      4, fault: true,
			events: func(bs []*httpBackend, d time.Duration) []event {
				b := bs[0]
				return []event{{frac(d, 0.15), "b0 answers 503", func() { b.failStatus.Store(http.StatusServiceUnavailable) }}}
			},
		},
		{
			name:   "hung",
			title:  "One backend hung",
			models: "A deadlocked process: from 15% of the run backend 0 accepts connections and reads requests, /healthz included, but never answers; requests sent to it end at the client's 1s deadline.",
			n:      4, fault: true,
			events: func(bs []*httpBackend, d time.Duration) []event {
				b := bs[0]
				return []event{{frac(d, 0.15), "b0 hangs", func() { b.hung.Store(true) }}}
			},
		},
		{
			name:   "kill-restart",
			title:  "One backend killed and restarted",
			models: "A crash and restart: backend 0 is closed hard at 25% of the run (requests in progress fail, pooled connections die, new ones are refused) and serves again on the same port at 60%.",
			n:      4, fault: true,
			events: func(bs []*httpBackend, d time.Duration) []event {
				b := bs[0]
				return []event{
					{frac(d, 0.25), "b0 killed", b.kill},
					{frac(d, 0.60), "b0 restarted", func() { _ = b.restart() }},
				}
			},
		},
		{
			name:   "retry-after-429",
			title:  "Single endpoint answering 429 with Retry-After",
			models: "A per-caller rate limit in front of one address (a Kubernetes ClusterIP, a VIP): from 15% of the run the only backend answers every 10th request with 429 and `Retry-After: 2`, the others as usual.",
			notes:  "The 429s fail for every policy (about 10%); what matters is that every other request reaches the server (`reached server` target): a client that takes the endpoint out of rotation on the 429's Retry-After fails the requests of the next 2 s locally.",
			n:      1, fault: true,
			events: func(bs []*httpBackend, d time.Duration) []event {
				b := bs[0]
				return []event{{frac(d, 0.15), "b0 rate-limits 1 in 10 (429, Retry-After: 2)", func() { b.limitEvery.Store(10) }}}
			},
		},
		{
			name:   "refused-post",
			title:  "One endpoint refusing connections under POST load",
			models: "An instance gone under non-idempotent traffic: every request is a POST with a body and no Idempotency-Key; at 15% of the run backend 0 stops (listener and idle connections closed, requests in progress finish), and its port refuses connections from then on.",
			notes:  "A POST refused at connect was never written, so it is safe to send to another endpoint whatever its method; a POST that may have been processed never is. `DUPLICATE_POST` (if any) counts POSTs a server received more than once: it must be 0.",
			n:      4, fault: true, post: true,
			events: func(bs []*httpBackend, d time.Duration) []event {
				b := bs[0]
				return []event{{frac(d, 0.15), "b0 down (connections refused)", b.stopServing}}
			},
		},
		{
			name:    "weights",
			title:   "Weights 1:2:3:4",
			models:  "Heterogeneous capacity declared by discovery: 4 equal backends carrying weights 1, 2, 3, 4 (ideal shares 10/20/30/40%) in the fulcrum:// target (`host:port=w`).",
			notes:   "Only Fulcrum reads weights; the naive rotation and httplb's picker spread evenly by design, so their shares are shown for reference, not as a failure.",
			n:       4,
			weights: []uint32{1, 2, 3, 4},
		},
	}
}
