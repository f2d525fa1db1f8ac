package consul

import (
	"github.com/hashicorp/consul/api"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

// NewSourceWithClock is NewSource with the watches' clock and random
// numbers replaced, for deterministic tests of pauses and request counts.
func NewSourceWithClock(client *api.Client, opts Options, clk resolver.Clock, rand func() float64) (resolver.Source, error) {
	s, err := NewSource(client, opts)
	if err != nil {
		return nil, err
	}
	s.(*source).clk, s.(*source).rand = clk, rand
	return s, nil
}
