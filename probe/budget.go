package probe

import "time"

// ScaledInterval returns the probe interval of one of n endpoints under a
// budget of rate probes a second for all of them together:
// max(interval, n / rate). rate <= 0 means no budget.
//
// A server with C clients receives C / interval probes a second (10 000 a
// second for 5 000 clients at the default 500ms), and a client of N
// endpoints sends N / interval (20 000 a second at N = 10 000); with the
// budget a client sends at most rate, and a server behind N-endpoint
// clients receives about C x rate / N (README, "Probe load").
func ScaledInterval(interval time.Duration, n int, rate float64) time.Duration {
	if rate <= 0 {
		return interval
	}
	return max(interval, time.Duration(float64(n)/rate*float64(time.Second)))
}
