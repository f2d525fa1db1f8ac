//go:build race

package bench

// raceEnabled shortens the smoke run under the race detector, which
// slows every RPC several times over.
const raceEnabled = true
