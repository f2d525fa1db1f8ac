// Package interop_test runs grpc-go's interop test cases through the
// weighted_least_request policy, each case in its own subprocess.
package interop_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines in the parent and, because a child
// is this same binary, in every child too: a case that leaks fails.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
