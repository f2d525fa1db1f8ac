// Package config holds the JSON building blocks shared by Fulcrum's
// configuration types: Duration, the validation helpers that give every
// error one wording ("<field>: <value>, must be <constraint>"),
// Unmarshal, which reports unknown fields instead of failing on them, and
// Once, which logs such a warning once.
//
// Each package owns the configuration of what it implements (breaker,
// healthprobe, picker, endpointset); the transport adapters embed those types
// in their policy configuration.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("250ms", "1.5s"), the form service configs use (which also covers the
// protobuf JSON form of google.protobuf.Duration).
type Duration time.Duration

// errNotDuration is the constraint of a value Duration cannot read.
var errNotDuration = errors.New(`a duration string such as "5s"`)

// UnmarshalJSON implements json.Unmarshaler. Its error says what is
// allowed; Unmarshal adds the field path and the value.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errNotDuration
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errNotDuration
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// String returns the duration as time.Duration formats it ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// Invalid returns the error of a value out of bounds, in the project's one
// wording: "<field>: <value>, must be <constraint>".
func Invalid(field string, value any, constraint string) error {
	return fmt.Errorf("%s: %v, must be %s", field, value, constraint)
}

// IntIn returns nil if lo <= v <= hi, else "<field>: <v>, must be in [lo, hi]".
func IntIn(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return Invalid(field, v, fmt.Sprintf("in [%d, %d]", lo, hi))
	}
	return nil
}

// IntAtLeast returns nil if v >= lo, else "<field>: <v>, must be >= lo".
func IntAtLeast(field string, v, lo int) error {
	if v < lo {
		return Invalid(field, v, fmt.Sprintf(">= %d", lo))
	}
	return nil
}

// FloatIn returns nil if lo <= v <= hi, else
// "<field>: <v>, must be in [lo, hi]". NaN is out of every range.
func FloatIn(field string, v, lo, hi float64) error {
	if math.IsNaN(v) || v < lo || v > hi {
		return Invalid(field, v, fmt.Sprintf("in [%g, %g]", lo, hi))
	}
	return nil
}

// DurationIn returns nil if lo <= v <= hi, else
// "<field>: <v>, must be in [lo, hi]".
func DurationIn(field string, v Duration, lo, hi time.Duration) error {
	if time.Duration(v) < lo || time.Duration(v) > hi {
		return Invalid(field, v, fmt.Sprintf("in [%v, %v]", lo, hi))
	}
	return nil
}

// Prefix puts p in front of the text of err, or of each error err joins
// (errors.Join), so that a sub-configuration's "window: ..." becomes the
// policy's "breaker.window: ..." and then
// "weighted_least_request: breaker.window: ...". The results wrap the
// originals. Prefix(p, nil) is nil.
func Prefix(p string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = Prefix(p, e)
		}
		return errors.Join(out...)
	}
	return &prefixed{p: p, err: err}
}

type prefixed struct {
	p   string
	err error
}

func (e *prefixed) Error() string { return e.p + e.err.Error() }
func (e *prefixed) Unwrap() error { return e.err }

// maxWarned bounds the messages a Once remembers, against a control plane
// sending ever new fields.
const maxWarned = 1000

// Once logs each distinct warning once: a config that arrives again with
// every resolver update is not logged every time. Once maxWarned (1000)
// messages are remembered, new ones are not logged at all. The zero value
// is ready to use; an adapter keeps one for the process, and a test makes
// its own, so that no test depends on what another run logged.
type Once struct {
	mu     sync.Mutex
	warned map[string]bool
}

// Warn calls warn(msg) the first time o sees msg.
func (o *Once) Warn(msg string, warn func(args ...any)) {
	o.mu.Lock()
	first := !o.warned[msg] && len(o.warned) < maxWarned
	if first {
		if o.warned == nil {
			o.warned = make(map[string]bool)
		}
		o.warned[msg] = true
	}
	o.mu.Unlock()
	if first {
		warn(msg)
	}
}
