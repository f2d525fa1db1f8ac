package interop_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// interopCase is one case a child process runs.
type interopCase struct {
	name string
	// run performs the case; grpc-go's helpers end the process on failure.
	run func(ctx context.Context, cc *grpc.ClientConn)
	// server builds the TestService each backend serves; nil means
	// interop.NewTestServer().
	server func() testgrpc.TestServiceServer
	// mayEndInClient marks cases whose RPC may fail on the client before
	// any backend sees it.
	mayEndInClient bool
	// check, if set, replaces the default "some backend saw the case"
	// check with one on the RPC count per backend.
	check func(t *testing.T, hits []int64)
}

// unary adapts a helper that takes a TestServiceClient.
func unary(do func(context.Context, testgrpc.TestServiceClient, ...grpc.CallOption)) func(context.Context, *grpc.ClientConn) {
	return func(ctx context.Context, cc *grpc.ClientConn) {
		do(ctx, testgrpc.NewTestServiceClient(cc))
	}
}

// Soak parameters: the interop client's payload sizes, few enough
// iterations to finish in about a second under -race, and a latency bound
// generous enough for a loaded two-core machine.
const (
	soakIterations = 60
	soakWorkers    = 3
)

// suite is grpc-go's interop cases, named as in
// https://github.com/grpc/grpc/blob/master/doc/interop-test-descriptions.md.
var suite = []interopCase{
	{name: "empty_unary", run: unary(interop.DoEmptyUnaryCall)},
	{name: "large_unary", run: unary(interop.DoLargeUnaryCall)},
	{name: "client_streaming", run: unary(interop.DoClientStreaming)},
	{name: "server_streaming", run: unary(interop.DoServerStreaming)},
	{name: "ping_pong", run: unary(interop.DoPingPong)},
	{name: "empty_stream", run: unary(interop.DoEmptyStream)},
	{name: "timeout_on_sleeping_server", run: unary(interop.DoTimeoutOnSleepingServer), mayEndInClient: true},
	{name: "cancel_after_begin", run: unary(interop.DoCancelAfterBegin), mayEndInClient: true},
	{name: "cancel_after_first_response", run: unary(interop.DoCancelAfterFirstResponse)},
	{name: "custom_metadata", run: unary(interop.DoCustomMetadata)},
	{name: "status_code_and_message", run: unary(interop.DoStatusCodeAndMessage)},
	{name: "special_status_message", run: unary(interop.DoSpecialStatusMessage)},
	{name: "unimplemented_method", run: func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoUnimplementedMethod(ctx, cc)
	}},
	{name: "unimplemented_service", run: func(ctx context.Context, cc *grpc.ClientConn) {
		interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(cc))
	}},
	{
		name: "rpc_soak",
		run: func(ctx context.Context, cc *grpc.ClientConn) {
			interop.DoSoakTest(ctx, interop.SoakTestConfig{
				RequestSize:                      271828,
				ResponseSize:                     314159,
				PerIterationMaxAcceptableLatency: 5 * time.Second,
				OverallTimeout:                   10 * time.Second,
				ServerAddr:                       cc.CanonicalTarget(),
				NumWorkers:                       soakWorkers,
				Iterations:                       soakIterations,
				MaxFailures:                      0,
				// One channel for the whole soak: the policy, not a fresh
				// connection per iteration, decides where each RPC goes.
				ChannelForTest: func() (*grpc.ClientConn, func()) { return cc, func() {} },
			})
		},
		// Every soak iteration is one UnaryCall; all of them must land,
		// and on every backend. "Every backend" does not fail by chance:
		// with equal weights the picker draws its first candidate
		// uniformly, and a backend that has served nothing yet has no RPC
		// in flight, so no rival is less loaded and it wins when drawn
		// first: probability >= 1/3 per RPC, so it misses all 60 with
		// probability <= (2/3)^60 < 3e-11.
		check: func(t *testing.T, hits []int64) {
			var total int64
			for _, h := range hits {
				total += h
			}
			if total != soakIterations {
				t.Errorf("backends saw %d RPCs in total, want %d (one per soak iteration); per backend: %v", total, soakIterations, hits)
			}
			for i, h := range hits {
				if h == 0 {
					t.Errorf("backend %d served no soak RPC; per backend: %v, want all > 0", i, hits)
				}
			}
		},
	},
}

// faultyCases exist to prove the harness reports failures; TestInterop
// never runs them.
var faultyCases = []interopCase{
	{
		// status_code_and_message against servers that answer with the
		// wrong status: the helper must fail the child.
		name:   "broken_status",
		run:    unary(interop.DoStatusCodeAndMessage),
		server: func() testgrpc.TestServiceServer { return wrongStatusServer{interop.NewTestServer()} },
	},
	{
		// A case that never finishes: the child's -test.timeout must end it.
		name: "hang",
		run: func(ctx context.Context, _ *grpc.ClientConn) {
			select {
			case <-ctx.Done():
			case <-time.After(time.Minute):
			}
		},
	},
}

func lookupCase(name string) (interopCase, bool) {
	for _, cs := range [][]interopCase{suite, faultyCases} {
		for _, c := range cs {
			if c.name == name {
				return c, true
			}
		}
	}
	return interopCase{}, false
}

// wrongStatusServer is the interop TestService except that a UnaryCall
// asking for a status gets a different one.
type wrongStatusServer struct {
	testgrpc.TestServiceServer
}

const wrongStatusMessage = "wrong status on purpose"

func (s wrongStatusServer) UnaryCall(ctx context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if in.GetResponseStatus() != nil {
		return nil, status.Error(codes.Internal, wrongStatusMessage)
	}
	return s.TestServiceServer.UnaryCall(ctx, in)
}
