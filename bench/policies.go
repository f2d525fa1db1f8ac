package bench

import (
	"slices"

	"google.golang.org/grpc/codes"

	"github.com/fulcrum-lb/fulcrum"
)

// Policy is one load-balancing configuration under test.
type Policy struct {
	// Name labels the policy in tables and charts.
	Name string
	// Config is the policy's entry of loadBalancingConfig.
	Config string
	// Hedging, when set, dials with fulcrum.WithHedging.
	Hedging *fulcrum.HedgingPolicy
	// Zoned policies read endpoint zones; they run by default only in
	// scenarios whose backends have zones.
	Zoned bool
}

// Policies returns the policies compared by default, grpc-go's first.
// weighted_round_robin gets short periods so it can react within a run of
// a few seconds (its defaults, 10s blackout and 1s updates, could not).
func Policies() []Policy {
	return []Policy{
		{Name: "round_robin", Config: `{"round_robin":{}}`},
		{Name: "least_request", Config: `{"least_request_experimental":{}}`},
		{Name: "wrr_orca", Config: `{"weighted_round_robin":{"blackoutPeriod":"1s","weightUpdatePeriod":"0.1s"}}`},
		{Name: "fulcrum", Config: `{"weighted_least_request":{}}`},
		{Name: "fulcrum_nolatency", Config: `{"weighted_least_request":{"latencyAware":false}}`},
		// The default hedging policy: adaptive delay, 5 % extra load.
		{Name: "fulcrum_hedging", Config: `{"weighted_least_request":{}}`, Hedging: &fulcrum.HedgingPolicy{}},
		// Zone-aware routing (issue 20), the client in zone a.
		{Name: "fulcrum_zone", Config: `{"weighted_least_request":{"localZone":"` + localZone + `"}}`, Zoned: true},
		// The same with hedging that sends the next attempt at once when
		// one fails with UNAVAILABLE (gRFC A6 nonFatalStatusCodes): the
		// RPCs a breaker loses while it learns that an instance fails fast.
		{Name: "fulcrum_zone_hedging", Config: `{"weighted_least_request":{"localZone":"` + localZone + `"}}`, Zoned: true,
			Hedging: &fulcrum.HedgingPolicy{NonFatalStatusCodes: []codes.Code{codes.Unavailable}}},
	}
}

// defaultPolicies are the policies s runs when none are named.
func (s scenario) defaultPolicies() []Policy {
	var out []Policy
	for _, p := range Policies() {
		if s.policies == nil && !p.Zoned || slices.Contains(s.policies, p.Name) {
			out = append(out, p)
		}
	}
	return out
}
