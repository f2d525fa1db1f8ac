package healthprobe_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/fulcrum-lb/fulcrum/healthprobe"
)

// The tests in this file check how probe loops end and are shared, with the
// fake clock of export_test.go (see e2e_test.go).

// TestStop_EndsLoop checks stop's contract: when it returns the probe
// goroutine is gone, so firing the wait it was parked on sends no Check and
// calls no onChange. stop is idempotent.
func TestStop_EndsLoop(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, h, _ := manualSubConn(t, ts)

	stop := clk.Start(sc, testConfig(), h.record)
	w := clk.Next(t)
	require.Equal(t, 1, h.numVerdicts())
	done := clk.LoopDone(sc)
	// Flip so that onChange would be called again if the loop survived.
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	stop()
	requireClosed(t, done, "stop returned before the probe loop exited")
	stop() // idempotent

	w.Fire() // nobody is left to receive it
	assert.Equal(t, 1, ts.numCalls(), "Check calls after stop")
	assert.Equal(t, 1, h.numVerdicts(), "onChange after stop")
	assert.Zero(t, clk.Pending(), "the loop asked for another wait after stop")
}

// TestStop_WaitsForRunningOnChange blocks the first onChange and checks that
// a concurrent stop is parked until onChange returns. The goroutine running
// stop is observed blocked on the listener's mutex through its stack, a
// state it cannot leave before onChange returns, so no timing is involved.
func TestStop_WaitsForRunningOnChange(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)

	entered, unblock := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	stop := clk.Start(sc, testConfig(), func(bool, string) {
		if calls.Add(1) == 1 {
			close(entered)
			<-unblock
		}
	})
	select {
	case <-entered:
	case <-time.After(defaultTestTimeout):
		t.Fatal("no onChange call")
	}
	done := clk.LoopDone(sc)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	waitFor(t, "stop to block, or return", func() bool {
		select {
		case <-stopped:
			t.Fatal("stop returned while onChange was running")
		default:
		}
		return stopBlockedOnMutex()
	})
	close(unblock)
	select {
	case <-stopped:
	case <-time.After(defaultTestTimeout):
		t.Fatal("stop did not return after onChange returned")
	}
	requireClosed(t, done, "stop returned before the probe loop exited")
	assert.EqualValues(t, 1, calls.Load())
}

// stopBlockedOnMutex reports whether some goroutine is inside a stop func
// returned by Start, blocked acquiring a sync.Mutex.
func stopBlockedOnMutex() bool {
	for _, g := range goroutines() {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[sync.Mutex.Lock") && (strings.Contains(g, "healthprobe.Start.func") || strings.Contains(g, "healthprobe.start.func")) {
			return true
		}
	}
	return false
}

// TestSubConnShutdown_EndsLoop checks that grpc-go's own cleanup ends the
// loop without stop: on SubConn.Shutdown, and when the server goes away and
// the SubConn leaves READY.
func TestSubConnShutdown_EndsLoop(t *testing.T) {
	t.Run("Shutdown", func(t *testing.T) {
		clk := healthprobe.UseFakeClock(t, 0.5)
		ts, _ := startServer(t, true)
		sc, h, _ := manualSubConn(t, ts)
		stop := clk.Start(sc, testConfig(), h.record)
		w := clk.Next(t)
		done := clk.LoopDone(sc)

		sc.Shutdown()
		waitClosed(t, done, "the probe loop to exit after Shutdown")
		w.Fire()
		assert.Equal(t, 1, ts.numCalls(), "Check calls after Shutdown")
		stop() // still safe, and returns at once
	})
	t.Run("server gone", func(t *testing.T) {
		clk := healthprobe.UseFakeClock(t, 0.5)
		ts, stopServer := startServer(t, true)
		sc, h, _ := manualSubConn(t, ts)
		stop := clk.Start(sc, testConfig(), h.record)
		defer stop()
		clk.Next(t)
		done := clk.LoopDone(sc)

		stopServer()
		waitClosed(t, done, "the probe loop to exit after the server went away")
		assert.Equal(t, 1, h.numVerdicts(), "onChange after the SubConn left READY")
	})
}

// TestLeaveReady_NoProbe kills the connection while the server keeps
// serving: the SubConn leaves READY and comes back READY on a new transport.
// The loop of the old READY period must be gone by then, so firing its wait
// sends no Check over the new transport; probing again takes a new Start.
func TestLeaveReady_NoProbe(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, h, ready := manualSubConn(t, ts)
	stop := clk.Start(sc, testConfig(), h.record)
	defer stop()
	w := clk.Next(t)
	require.Equal(t, 1, ts.numCalls())
	done := clk.LoopDone(sc)

	ts.closeConns()
	waitClosed(t, done, "the probe loop to exit when the SubConn left READY")
	select {
	case <-ready: // the test balancer reconnects on IDLE
	case <-time.After(defaultTestTimeout):
		t.Fatal("SubConn did not become READY again")
	}
	w.Fire()
	assert.Zero(t, clk.Pending(), "the old loop asked for another wait")
	assert.Equal(t, 1, ts.numCalls(), "Check calls after the SubConn left READY")
	assert.Equal(t, 1, h.numVerdicts(), "onChange after the SubConn left READY")

	// A new Start on the READY SubConn probes again, at once.
	again := &hooks{server: ts}
	stopAgain := clk.Start(sc, testConfig(), again.record)
	defer stopAgain()
	clk.Next(t)
	assert.Equal(t, []verdict{{true, "SERVING", 2}}, again.all())
}

// TestStart_TwiceSharesOneLoop starts two probers on the same SubConn (auto
// mode): both get the first verdict, from one Check, and every fired wait
// sends exactly one Check and asks for exactly one new wait. Two loops would
// send two Checks before the two verdicts and park on two waits.
func TestStart_TwiceSharesOneLoop(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	h := &hooks{clk: clk, cfg: testConfig(), server: ts, startTwice: true}
	dial(t, h, ts.addr)

	vs := h.waitVerdicts(t, 2) // one first verdict per listener
	assert.Equal(t, []verdict{{true, "SERVING", 1}, {true, "SERVING", 1}}, vs)
	w := clk.Next(t)
	assert.Equal(t, 1, probeGoroutines())
	for i := 2; i <= 6; i++ {
		w = clk.Step(t, w)
		assert.Equal(t, i, ts.numCalls(), "Check calls after %d probes", i)
		assert.Zero(t, clk.Pending(), "more than one loop is waiting")
	}
	assert.Equal(t, 2, h.numVerdicts())
}

// TestStart_SecondStartGetsCurrentVerdictAtOnce joins a loop that has
// reached a verdict: the new listener receives that verdict while the loop
// still waits, with no probe sent for it.
func TestStart_SecondStartGetsCurrentVerdictAtOnce(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)

	a, b := &hooks{server: ts}, &hooks{server: ts}
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	stopA := clk.Start(sc, testConfig(), a.record)
	defer stopA()
	w := clk.Next(t)
	require.Equal(t, []verdict{{false, "NOT_SERVING", 1}}, a.all())

	stopB := clk.Start(sc, testConfig(), b.record)
	defer stopB()
	assert.Equal(t, []verdict{{false, "NOT_SERVING", 1}}, b.waitVerdicts(t, 1))
	assert.Zero(t, clk.Pending(), "the loop stopped waiting for the new listener")
	assert.Equal(t, 1, ts.numCalls(), "a probe was sent for the new listener")
	assert.Equal(t, 1, a.numVerdicts(), "the old listener got the verdict again")

	// From then on both get changes.
	ts.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	clk.Step(t, clk.Step(t, w))
	want := verdict{true, "2 consecutive successes: SERVING", 3}
	assert.Equal(t, want, a.all()[1])
	assert.Equal(t, want, b.all()[1])
}

// TestStart_TwiceManual checks the sharing rules with explicit Starts:
// stopping the first listener keeps the loop for the second, which still
// gets changes; stopping the second ends it.
func TestStart_TwiceManual(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)
	cfg := testConfig()

	a, b := &hooks{server: ts}, &hooks{server: ts}
	stopA := clk.Start(sc, cfg, a.record)
	w := clk.Next(t)
	stopB := clk.Start(sc, cfg, b.record)
	b.waitVerdicts(t, 1)
	assert.Equal(t, 1, probeGoroutines())

	stopA()
	assert.Equal(t, 1, probeGoroutines(), "the loop must live on for B")
	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	clk.Step(t, w)
	assert.Equal(t, verdict{false, "1 consecutive failures: NOT_SERVING", 2}, b.all()[1])
	assert.Equal(t, 1, a.numVerdicts(), "A was stopped")

	done := clk.LoopDone(sc)
	stopB()
	requireClosed(t, done, "stopping the last listener did not end the loop")
}

// requireClosed fails the test unless ch is already closed.
func requireClosed(t *testing.T, ch <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatal(msg)
	}
}

// waitClosed waits until ch is closed, at most defaultTestTimeout.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(defaultTestTimeout):
		t.Fatalf("timed out after %v waiting for %s", defaultTestTimeout, what)
	}
}

// TestStop_NoOnChangeDuringDelivery stops listener A while the loop is
// delivering a change to B, registered before A, and has already taken its
// list of listeners: A must not be called after its stop returned, although
// the loop lives on for B.
func TestStop_NoOnChangeDuringDelivery(t *testing.T) {
	clk := healthprobe.UseFakeClock(t, 0.5)
	ts, _ := startServer(t, true)
	sc, _, _ := manualSubConn(t, ts)

	entered, unblock := make(chan struct{}), make(chan struct{})
	var bCalls atomic.Int32
	stopB := clk.Start(sc, testConfig(), func(bool, string) {
		if bCalls.Add(1) == 2 { // the change below
			close(entered)
			<-unblock
		}
	})
	defer stopB()
	a := &hooks{server: ts}
	stopA := clk.Start(sc, testConfig(), a.record)
	w := clk.Next(t)
	a.waitVerdicts(t, 1)

	ts.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	w.Fire()
	select {
	case <-entered:
	case <-time.After(defaultTestTimeout):
		t.Fatal("B got no onChange for the change")
	}
	stopA() // B's onChange is running; A's is not, so this returns
	close(unblock)
	clk.Next(t) // the delivery is over
	assert.Equal(t, 1, a.numVerdicts(), "onChange of A after its stop returned")
	assert.EqualValues(t, 2, bCalls.Load())
}
