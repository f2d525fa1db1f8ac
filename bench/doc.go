// Package bench runs Fulcrum's scenario benchmark: in-process gRPC
// backends on loopback that misbehave on cue, driven through grpc-go's
// policies and weighted_least_request side by side.
package bench
