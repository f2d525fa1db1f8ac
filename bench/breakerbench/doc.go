// Package breakerbench measures the per-RPC cost of Fulcrum's breaker on the
// pick path against sony/gobreaker and a bare in-flight counter.
package breakerbench
