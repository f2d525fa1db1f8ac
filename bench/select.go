package bench

import (
	"fmt"
	"slices"
)

// selectNamed returns the items of all that names lists, in its order, or
// all of them when names is empty; what ("policy", "scenario") names the
// kind in the error for an unknown name.
func selectNamed[T any](what string, all []T, name func(T) string, names []string) ([]T, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []T
	for _, n := range names {
		i := slices.IndexFunc(all, func(x T) bool { return name(x) == n })
		if i < 0 {
			return nil, fmt.Errorf("bench: %s: %q, must be one of %v", what, n, namesOf(all, name))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// namesOf returns the names of all, in order.
func namesOf[T any](all []T, name func(T) string) []string {
	out := make([]string, 0, len(all))
	for _, x := range all {
		out = append(out, name(x))
	}
	return out
}

func policyName(p Policy) string             { return p.Name }
func httpPolicyName(p HTTPPolicy) string     { return p.Name }
func scenarioName(s scenario) string         { return s.name }
func httpScenarioName(s httpScenario) string { return s.name }

func selectPolicies(names []string) ([]Policy, error) {
	return selectNamed("policy", Policies(), policyName, names)
}

func selectHTTPPolicies(names []string) ([]HTTPPolicy, error) {
	return selectNamed("policy", HTTPPolicies(), httpPolicyName, names)
}

func selectScenarios(names []string) ([]scenario, error) {
	return selectNamed("scenario", scenarios(), scenarioName, names)
}

func selectHTTPScenarios(names []string) ([]httpScenario, error) {
	return selectNamed("scenario", httpScenarios(), httpScenarioName, names)
}

// ScenarioNames returns the names of every scenario, in report order.
func ScenarioNames() []string { return namesOf(scenarios(), scenarioName) }

// HTTPScenarioNames returns the names of every HTTP scenario, in report
// order.
func HTTPScenarioNames() []string { return namesOf(httpScenarios(), httpScenarioName) }

// HTTPPolicyNames returns the names of HTTPPolicies.
func HTTPPolicyNames() []string { return namesOf(HTTPPolicies(), httpPolicyName) }
