package consul

import (
	"context"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/fulcrum-lb/fulcrum/resolver"
)

// NewSourceWithEnv is NewSource with the watch's clock, sleep and random
// numbers replaced, for deterministic tests of pauses and request counts.
func NewSourceWithEnv(client *api.Client, opts Options, now func() time.Time, sleep func(context.Context, time.Duration) bool, rand func() float64) (resolver.Source, error) {
	s, err := NewSource(client, opts)
	if err != nil {
		return nil, err
	}
	s.(*source).env = env{now: now, sleep: sleep, rand: rand}
	return s, nil
}
