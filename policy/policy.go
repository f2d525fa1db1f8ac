// Package policy is the configuration both of Fulcrum's transports share —
// selection (package picker), panic mode, ejection cap and slow start
// (endpointset), the circuit breaker (breaker) and active health probing
// (probe) — and the one parser through which each adapter reads its JSON.
//
// Each component owns its part (its fields, defaults, bounds and
// validation); this package assembles them, fills defaults, reports unknown
// fields, applies gRFC A48's choiceCount clamp, and words every error
// "<component>: <field path>: <value>, must be <constraint>". An adapter
// adds only its own fields: the gRPC policy's status codes and Check
// service, fulcrumhttp's statuses, probe path and retries.
package policy

import (
	"errors"
	"fmt"
	"os"

	"github.com/fulcrum-lb/fulcrum/breaker"
	"github.com/fulcrum-lb/fulcrum/config"
	"github.com/fulcrum-lb/fulcrum/endpointset"
	"github.com/fulcrum-lb/fulcrum/picker"
	"github.com/fulcrum-lb/fulcrum/probe"
)

// Shared is the part of a transport's configuration the engine and the
// driver read: the same fields, defaults and bounds under gRPC and HTTP.
type Shared struct {
	Picker      picker.Config
	EndpointSet endpointset.Config
	Breaker     breaker.Config
	HealthProbe probe.Config
}

// Default returns the default of every shared field.
func Default() Shared {
	return Shared{
		Picker:      picker.DefaultConfig(),
		EndpointSet: endpointset.DefaultConfig(),
		Breaker:     breaker.DefaultConfig(),
		HealthProbe: probe.DefaultConfig(),
	}
}

// Parts points into an adapter's configuration struct at the shared
// fields, where its JSON layout puts them: picker and endpointset fields at
// the top level, the breaker's in "breaker", the probe's in "healthProbe".
type Parts struct {
	Picker      *picker.Config
	EndpointSet *endpointset.Config
	Breaker     *breaker.Config
	HealthProbe *probe.Config
}

// Shared returns a copy of the shared fields.
func (p Parts) Shared() Shared {
	return Shared{Picker: *p.Picker, EndpointSet: *p.EndpointSet, Breaker: *p.Breaker, HealthProbe: *p.HealthProbe}
}

// Validate reports every shared field outside its documented bounds, named
// by its JSON path ("breaker.window: 100ms, must be in [1s, 10m0s]").
func (s Shared) Validate() error {
	return errors.Join(
		s.Picker.Validate(),
		s.EndpointSet.Validate(),
		config.Prefix("breaker.", s.Breaker.Validate()),
		config.Prefix("healthProbe.", s.HealthProbe.Validate()),
	)
}

// Config is what an adapter's configuration struct provides to Parse.
type Config interface {
	// Parts points at the shared fields inside the struct.
	Parts() Parts
	// ValidateOwn reports the adapter's own fields outside their bounds,
	// named by JSON path and without the component prefix.
	ValidateOwn() error
}

// Parse reads the JSON object js into dst, which holds the adapter's
// defaults (start from Default() for the shared parts), and validates it.
// Fields js leaves out keep their defaults. It returns the dotted paths of
// the fields dst does not have (unknown), and warnings about values it
// adjusted, each "<component>: ..." for the adapter to log or reject.
// Errors read "<component>: <field path>: <value>, must be <constraint>",
// joined, one per bad field.
func Parse(component string, js []byte, dst Config) (unknown, warnings []string, err error) {
	unknown, err = config.Unmarshal(js, dst)
	if err != nil {
		return unknown, nil, config.Prefix(component+": ", err)
	}
	parts := dst.Parts()
	if err := EnvZone(parts.EndpointSet, os.Getenv); err != nil {
		return unknown, nil, config.Prefix(component+": ", err)
	}
	for _, w := range parts.Picker.Clamp() {
		warnings = append(warnings, component+": "+w)
	}
	if err := errors.Join(parts.Shared().Validate(), dst.ValidateOwn()); err != nil {
		return unknown, warnings, config.Prefix(component+": ", err)
	}
	return unknown, warnings, nil
}

// EnvZone gives c the client's zone from the environment variable
// endpointset.LocalZoneEnv (read with getenv) when c has none. A bad value
// is an error naming the variable.
func EnvZone(c *endpointset.Config, getenv func(string) string) error {
	if c.LocalZone != "" {
		return nil
	}
	z := getenv(endpointset.LocalZoneEnv)
	if err := (endpointset.Config{LocalZone: z}).ValidateZone(); err != nil {
		return fmt.Errorf("%s (environment variable %s)", err, endpointset.LocalZoneEnv)
	}
	c.LocalZone = z
	return nil
}

// UnknownWarning is the warning about an ignored unknown field.
func UnknownWarning(component, field string) string {
	return fmt.Sprintf("%s: unknown field %q ignored", component, field)
}
