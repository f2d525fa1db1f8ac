// Package xds_test proves that Fulcrum works inside grpc-go's xDS and
// subsetting machinery: as a custom load-balancing policy named by an xDS
// control plane (gRFC A52), with an in-process go-control-plane management
// server, and as the child of random_subsetting_experimental (gRFC A68).
// It is a nested module so that go-control-plane stays out of the core
// module's dependencies.
package xds_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
