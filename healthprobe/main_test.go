package healthprobe_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/grpclog"
)

func TestMain(m *testing.M) {
	// Installed before any gRPC activity, as SetLoggerV2 requires.
	grpclog.SetLoggerV2(logs)
	goleak.VerifyTestMain(m)
}

// logs captures what the "fulcrum" component logs so that tests can count
// warnings and errors; other components' errors still go to stderr.
var logs = &captureLogger{}

type captureLogger struct {
	mu    sync.Mutex
	lines []string // fulcrum lines only, bounded by maxLines
}

const maxLines = 10000

func (c *captureLogger) record(severity, msg string) {
	if !strings.Contains(msg, "[fulcrum]") {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) < maxLines {
		c.lines = append(c.lines, severity+": "+msg)
	}
}

// count returns how many captured lines contain every one of subs.
func (c *captureLogger) count(subs ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
next:
	for _, l := range c.lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		n++
	}
	return n
}

func (c *captureLogger) Info(args ...any)   { c.record("INFO", fmt.Sprint(args...)) }
func (c *captureLogger) Infoln(args ...any) { c.record("INFO", fmt.Sprintln(args...)) }
func (c *captureLogger) Infof(format string, args ...any) {
	c.record("INFO", fmt.Sprintf(format, args...))
}
func (c *captureLogger) Warning(args ...any)   { c.record("WARNING", fmt.Sprint(args...)) }
func (c *captureLogger) Warningln(args ...any) { c.record("WARNING", fmt.Sprintln(args...)) }
func (c *captureLogger) Warningf(format string, args ...any) {
	c.record("WARNING", fmt.Sprintf(format, args...))
}
func (c *captureLogger) Error(args ...any)                 { c.error(fmt.Sprint(args...)) }
func (c *captureLogger) Errorln(args ...any)               { c.error(fmt.Sprintln(args...)) }
func (c *captureLogger) Errorf(format string, args ...any) { c.error(fmt.Sprintf(format, args...)) }
func (c *captureLogger) Fatal(args ...any)                 { c.fatal(fmt.Sprint(args...)) }
func (c *captureLogger) Fatalln(args ...any)               { c.fatal(fmt.Sprintln(args...)) }
func (c *captureLogger) Fatalf(format string, args ...any) { c.fatal(fmt.Sprintf(format, args...)) }
func (c *captureLogger) V(int) bool                        { return false }

func (c *captureLogger) error(msg string) {
	if strings.Contains(msg, "[fulcrum]") {
		c.record("ERROR", msg) // tests assert on these
		return
	}
	fmt.Fprintln(os.Stderr, "ERROR:", msg)
}

func (c *captureLogger) fatal(msg string) {
	fmt.Fprintln(os.Stderr, "FATAL:", msg)
	os.Exit(1)
}
