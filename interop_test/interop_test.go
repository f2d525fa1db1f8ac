package interop_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestInterop runs every case of the suite in its own child process, two at
// a time, each as a subtest named after the case; a failing case fails
// only its subtest, with the child's output.
func TestInterop(t *testing.T) {
	for _, c := range suite {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, err := runCase(context.Background(), c.name, childTimeout)
			if err != nil {
				t.Fatalf("%v; child output:\n%s", err, out)
			}
			if line := lastLine(out, "case "+c.name+" passed"); line != "" {
				t.Log(line)
			}
		})
	}
}

// TestRunCase_ReportsFailures runs cases that must fail through runCase
// and checks that it reports each, with the output that explains why.
func TestRunCase_ReportsFailures(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		// wantOutput must appear in the child's output.
		wantOutput string
	}{
		{name: "broken_status", timeout: childTimeout, wantOutput: wrongStatusMessage},
		{name: "hang", timeout: 4 * time.Second, wantOutput: "test timed out"},
		{name: "no_such_case", timeout: childTimeout, wantOutput: `unknown interop case "no_such_case"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runCase(context.Background(), tt.name, tt.timeout)
			if err == nil {
				t.Fatalf("runCase(%q) = nil error, want a failure; child output:\n%s", tt.name, out)
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Errorf("runCase(%q) error %q does not name the case", tt.name, err)
			}
			// No wall-clock bound on runCase: "hang" proves the timeout
			// by its output, which only the child's -test.timeout writes;
			// without it the case would end at caseTimeout and pass,
			// failing the nil-error check above.
			if !strings.Contains(string(out), tt.wantOutput) {
				t.Errorf("runCase(%q) output lacks %q; output:\n%s", tt.name, tt.wantOutput, out)
			}
		})
	}
}

// lastLine returns the last line of out containing substr, trimmed.
func lastLine(out []byte, substr string) string {
	lines := strings.Split(string(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], substr) {
			return strings.TrimSpace(lines[i])
		}
	}
	return ""
}
