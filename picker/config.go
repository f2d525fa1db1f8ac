package picker

import "time"

// Config is the selection configuration of a Picker.
type Config struct {
	// ChoiceCount distinct candidates are compared per pick, 2..10.
	ChoiceCount int
	// ActiveRequestBias is the exponent of the in-flight count in the
	// score; 0 means weighted random.
	ActiveRequestBias float64
	// LatencyAware adds the peak-EWMA latency term.
	LatencyAware bool
	// LatencyDecay is the time constant of the peak-EWMA estimate.
	LatencyDecay time.Duration
}
