package balancer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// readmeRow is one row of README's "Configuration reference" table.
type readmeRow struct {
	field, def, bounds string
}

// readmeTable parses the table under "## Configuration reference".
func readmeTable(t *testing.T) []readmeRow {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration reference\n")
	if !ok {
		t.Fatal(`README.md has no "## Configuration reference" section`)
	}
	var rows []readmeRow
	inTable := false
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		if strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) < 4 {
			t.Fatalf("README table row %q: %d cells, want field | default | bounds | meaning", line, len(cells))
		}
		field := strings.Trim(strings.TrimSpace(cells[0]), "`")
		if field == "field" {
			continue
		}
		rows = append(rows, readmeRow{field: field, def: strings.Trim(strings.TrimSpace(cells[1]), "`"), bounds: strings.TrimSpace(cells[2])})
	}
	if len(rows) == 0 {
		t.Fatal("README's configuration table has no rows")
	}
	return rows
}

// flatten maps the dotted JSON paths of the leaves of v to their values.
func flatten(prefix string, v any, out map[string]any) {
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			flatten(strings.TrimPrefix(prefix+"."+k, "."), x, out)
		}
		return
	}
	out[prefix] = v
}

// TestREADME_ConfigTableMatchesDefaults checks every row's default against
// DefaultConfig() marshalled to JSON, and that the table lists every JSON
// field of the config and nothing else.
func TestREADME_ConfigTableMatchesDefaults(t *testing.T) {
	b, err := json.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	defaults := make(map[string]any)
	flatten("", m, defaults)

	seen := make(map[string]bool)
	for _, r := range readmeTable(t) {
		if seen[r.field] {
			t.Errorf("README: field %s listed twice", r.field)
		}
		seen[r.field] = true
		got, ok := defaults[r.field]
		if !ok {
			t.Errorf("README lists %s, which is not a field of the config", r.field)
			continue
		}
		var want any
		if list, ok := got.([]any); ok && !strings.HasPrefix(r.def, "[") {
			// A list written as comma-separated names.
			var names []any
			for _, n := range strings.Split(r.def, ",") {
				names = append(names, strings.TrimSpace(n))
			}
			want, got = names, list
		} else if err := json.Unmarshal([]byte(r.def), &want); err != nil {
			t.Errorf("README: default of %s, %q, is not a JSON value: %v", r.field, r.def, err)
			continue
		}
		if ws, ok := want.(string); ok {
			// "2m" and "2m0s" are the same duration.
			gs, _ := got.(string)
			wd, werr := time.ParseDuration(ws)
			gd, gerr := time.ParseDuration(gs)
			if werr == nil && gerr == nil {
				want, got = wd, gd
			}
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("README: default of %s is %s; DefaultConfig() has %v", r.field, r.def, got)
		}
	}
	var missing []string
	for f := range defaults {
		if !seen[f] {
			missing = append(missing, f)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("README's configuration table lacks %v", missing)
	}
}

// TestREADME_ConfigTableBounds parses every numeric or duration range of the
// table ("lo..hi", "(lo, hi]") and checks with the parser that each end is
// accepted and that just outside is rejected with an error naming the
// field. Ranges whose end names another field are covered by
// TestParseConfig.
func TestREADME_ConfigTableBounds(t *testing.T) {
	// Fields whose bound depends on another: set it out of the way.
	context := map[string]string{
		"breaker.openDuration": `"maxOpenDuration":"24h"`,
		"healthProbe.interval": `"timeout":"1ms"`,
	}
	checked := 0
	for _, r := range readmeTable(t) {
		lo, hi, loOpen, ok := parseBounds(r.bounds)
		if !ok {
			continue
		}
		isDur := strings.HasPrefix(r.def, `"`) // the other ranges are numbers
		isInt := !isDur && parseErr(r.field, "1.5", context) == fmt.Sprintf("%s: %s: 1.5, must be an integer", Name, r.field)
		value := func(s string, delta float64) string {
			if isDur {
				d, err := time.ParseDuration(s)
				if err != nil {
					t.Fatalf("README: bound %q of %s: %v", s, r.field, err)
				}
				return strconv.Quote((d + time.Duration(delta)).String())
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("README: bound %q of %s: %v", s, r.field, err)
			}
			if !isInt {
				delta *= 1e-6 * math.Max(1, math.Abs(f))
			}
			return strconv.FormatFloat(f+delta, 'f', -1, 64)
		}
		expect := func(v string, accepted bool) {
			err := parseErr(r.field, v, context)
			switch {
			case accepted && err != "" && !strings.Contains(err, "above 10: using 10"):
				t.Errorf("README bounds %s of %s: %s rejected: %s", r.bounds, r.field, v, err)
			case !accepted && r.field == "choiceCount" && strings.Contains(err, "above 10: using 10"):
				// Above 10 is clamped, not rejected (gRFC A48).
			case !accepted && !strings.HasPrefix(err, Name+": "+r.field+": "):
				t.Errorf("README bounds %s of %s: %s not rejected by a %s error (got %q)", r.bounds, r.field, v, r.field, err)
			}
		}
		if loOpen {
			expect(value(lo, 0), false)
			expect(value(lo, 1), true)
		} else {
			expect(value(lo, 0), true)
			expect(value(lo, -1), false)
		}
		expect(value(hi, 0), true)
		expect(value(hi, 1), false)
		checked++
	}
	if checked < 19 {
		t.Errorf("only %d ranges checked: the table's bounds column changed form", checked)
	}
}

// parseBounds reads "lo..hi" or "(lo, hi]" with literal ends.
func parseBounds(s string) (lo, hi string, loOpen, ok bool) {
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, "]") {
		lo, hi, ok = strings.Cut(strings.Trim(s, "(]"), ", ")
		loOpen = true
	} else {
		lo, hi, ok = strings.Cut(s, "..")
	}
	literal := func(x string) bool { return x != "" && (x[0] == '-' || x[0] >= '0' && x[0] <= '9') }
	return lo, hi, loOpen, ok && literal(lo) && literal(hi)
}

// parseErr parses a config setting field (a dotted path) to value, with
// the field's context, and returns the error text ("" if accepted, or the
// clamp warning for an accepted choiceCount above 10).
func parseErr(field, value string, context map[string]string) string {
	parts := strings.Split(field, ".")
	leaf := `"` + parts[len(parts)-1] + `":` + value
	if c := context[field]; c != "" {
		leaf += "," + c
	}
	js := "{" + leaf + "}"
	for i := len(parts) - 2; i >= 0; i-- {
		js = `{"` + parts[i] + `":` + js + `}`
	}
	_, warnings, err := parse([]byte(js))
	if err != nil {
		return err.Error()
	}
	if len(warnings) > 0 {
		return warnings[0]
	}
	return ""
}

// TestREADME_TunedExampleParses: the service config of README's "Use"
// section, every field at its default, is accepted without warnings and
// equals DefaultConfig().
func TestREADME_TunedExampleParses(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "A tuned service config")
	if !ok {
		t.Fatal(`README.md has no "A tuned service config" example`)
	}
	_, rest, _ = strings.Cut(rest, "```json\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("README's tuned example has no closed json block")
	}
	var sc struct {
		LoadBalancingConfig []map[string]json.RawMessage `json:"loadBalancingConfig"`
	}
	if err := json.Unmarshal([]byte(block), &sc); err != nil || len(sc.LoadBalancingConfig) != 1 {
		t.Fatalf("README's tuned example is not a service config with one policy: %v", err)
	}
	got, warnings, err := parse(sc.LoadBalancingConfig[0][Name])
	if err != nil || len(warnings) > 0 {
		t.Fatalf("README's tuned example: warnings %v, error %v", warnings, err)
	}
	if diff := cmp.Diff(DefaultConfig(), got, cmpopts.IgnoreFields(LBConfig{}, "LoadBalancingConfig")); diff != "" {
		t.Errorf("README's tuned example differs from the defaults (-default +example):\n%s", diff)
	}
}
