package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDuration_JSON(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Duration
		wantErr bool
	}{
		{`"250ms"`, Duration(250 * time.Millisecond), false},
		{`"1.5s"`, Duration(1500 * time.Millisecond), false},
		{`"1h2m"`, Duration(time.Hour + 2*time.Minute), false},
		{`"-1ns"`, Duration(-1), false},
		{`"0"`, 0, false},
		{`"5"`, 0, true}, // a number without unit is not a duration
		{`5`, 0, true},
		{`"soon"`, 0, true},
		{`true`, 0, true},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err != nil) != tc.wantErr || d != tc.want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v, error %t", tc.in, d, err, tc.want, tc.wantErr)
		}
	}
	b, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("Marshal(90s) = %s, %v; want \"1m30s\"", b, err)
	}
	if s := Duration(250 * time.Millisecond).String(); s != "250ms" {
		t.Errorf("String() = %q, want 250ms", s)
	}
}

func TestValidationHelpers(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string // "" means nil
	}{
		{"IntIn low edge", IntIn("n", 1, 1, 3), ""},
		{"IntIn high edge", IntIn("n", 3, 1, 3), ""},
		{"IntIn below", IntIn("n", 0, 1, 3), "n: 0, must be in [1, 3]"},
		{"IntIn above", IntIn("n", 4, 1, 3), "n: 4, must be in [1, 3]"},
		{"IntAtLeast edge", IntAtLeast("n", 2, 2), ""},
		{"IntAtLeast below", IntAtLeast("n", 1, 2), "n: 1, must be >= 2"},
		{"FloatIn edges", errors.Join(FloatIn("f", 0, 0, 0.5), FloatIn("f", 0.5, 0, 0.5)), ""},
		{"FloatIn above", FloatIn("f", 0.51, 0, 0.5), "f: 0.51, must be in [0, 0.5]"},
		{"FloatIn NaN", FloatIn("f", math.NaN(), 0, 1), "f: NaN, must be in [0, 1]"},
		{"FloatIn -Inf", FloatIn("f", math.Inf(-1), 0, 1), "f: -Inf, must be in [0, 1]"},
		{"DurationIn edges", errors.Join(DurationIn("d", Duration(time.Second), time.Second, time.Hour), DurationIn("d", Duration(time.Hour), time.Second, time.Hour)), ""},
		{"DurationIn below", DurationIn("d", Duration(999*time.Millisecond), time.Second, time.Hour), "d: 999ms, must be in [1s, 1h0m0s]"},
		{"Invalid", Invalid("x", `"a"`, "one of b, c"), `x: "a", must be one of b, c`},
		{"Prefix nil", Prefix("p.", nil), ""},
		{"Prefix one", Prefix("breaker.", IntIn("n", 0, 1, 3)), "breaker.n: 0, must be in [1, 3]"},
		{"Prefix joined, nested", Prefix("policy: ", errors.Join(IntIn("a", 0, 1, 3), Prefix("sub.", errors.Join(IntIn("b", 9, 1, 3), IntIn("c", 9, 1, 3))))),
			"policy: a: 0, must be in [1, 3]\npolicy: sub.b: 9, must be in [1, 3]\npolicy: sub.c: 9, must be in [1, 3]"},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.want)
		}
	}
	sentinel := errors.New("sentinel")
	if err := Prefix("p: ", errors.Join(sentinel)); !errors.Is(err, sentinel) {
		t.Errorf("Prefix does not wrap: errors.Is(%v, sentinel) = false", err)
	}
}

type inner struct {
	Window Duration `json:"window"`
	N      int      `json:"n"`
}

type Common struct {
	Enabled bool `json:"enabled"`
	Shadow  int  `json:"shadow"`
}

type unexportedEmbedded struct {
	Hidden string `json:"hidden"`
}

type outer struct {
	Common
	unexportedEmbedded
	Shadow   string            `json:"shadow"` // hides Common.Shadow, as in encoding/json
	Codes    []string          `json:"codes"`
	Sub      inner             `json:"sub"`
	Ratio    float64           `json:"ratio"`
	Labels   map[string]string `json:"labels"`
	Skipped  int               `json:"-"`
	NoTag    uint
	internal int
}

func TestUnmarshal(t *testing.T) {
	base := func() outer { return outer{Sub: inner{Window: Duration(time.Second), N: 1}, Codes: []string{"A"}} }
	tests := []struct {
		name        string
		in          string
		want        func(*outer)
		wantUnknown []string
		wantErr     string
	}{
		{name: "empty", in: ``, want: func(*outer) {}},
		{name: "null", in: `null`, want: func(*outer) {}},
		{name: "absent fields keep their value", in: `{"sub":{"n":2}}`, want: func(o *outer) { o.Sub.N = 2 }},
		{name: "every kind", in: `{"enabled":true,"hidden":"h","shadow":"s","codes":["B","C"],"sub":{"window":"2s"},"ratio":0.5,"labels":{"k":"v"},"NoTag":3}`,
			want: func(o *outer) {
				o.Enabled, o.Hidden, o.Shadow, o.Codes, o.Sub.Window = true, "h", "s", []string{"B", "C"}, Duration(2*time.Second)
				o.Ratio, o.Labels, o.NoTag = 0.5, map[string]string{"k": "v"}, 3
			}},
		{name: "unknown at every depth, sorted", in: `{"z":1,"sub":{"nope":{"deep":1},"n":5},"a":[1],"Skipped":1,"internal":2,"Enabled":true}`,
			want:        func(o *outer) { o.Sub.N = 5 },
			wantUnknown: []string{"Enabled", "Skipped", "a", "internal", "sub.nope", "z"}},
		{name: "wrong types with paths", in: `{"enabled":"yes","codes":[1],"sub":{"window":5,"n":1.5},"ratio":"x","labels":[],"NoTag":-1,"zz":0}`,
			wantUnknown: []string{"zz"},
			wantErr: "NoTag: -1, must be a non-negative integer\ncodes: [1], must be a list of strings\nenabled: \"yes\", must be true or false\n" +
				"labels: [], must be a JSON object\nratio: \"x\", must be a number\nsub.n: 1.5, must be an integer\n" +
				"sub.window: 5, must be a duration string such as \"5s\""},
		{name: "sub-object of the wrong type", in: `{"sub":"x"}`, wantErr: `sub: "x", must be a JSON object`},
		{name: "top level not an object", in: `[1, 2]`, wantErr: "config: [1,2], must be a JSON object"},
		{name: "long values are cut", in: `{"sub":"0123456789012345678901234567890123456789012345678901234567890123456789"}`,
			wantErr: `sub: "012345678901234567890123456789012345678901234567890123456789012..., must be a JSON object`},
		{name: "syntax error", in: `{"n":}`, wantErr: "config: invalid JSON: invalid character '}' looking for beginning of value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := base()
			unknown, err := Unmarshal([]byte(tc.in), &got)
			if diff := cmp.Diff(tc.wantUnknown, unknown); diff != "" {
				t.Errorf("unknown diff (-want +got):\n%s", diff)
			}
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := base()
			tc.want(&want)
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(outer{})); diff != "" {
				t.Errorf("diff (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Unmarshal([]byte(`{}`), outer{}); err == nil {
		t.Error("Unmarshal into a non-pointer: nil error")
	}
}

func TestOnce_WarnsEachMessageOnce(t *testing.T) {
	var got []any
	warn := func(args ...any) { got = append(got, args...) }
	var o Once
	for _, m := range []string{"test: a", "test: b", "test: a", "test: b", "test: c"} {
		o.Warn(m, warn)
	}
	if diff := cmp.Diff([]any{"test: a", "test: b", "test: c"}, got); diff != "" {
		t.Errorf("logged diff (-want +got):\n%s", diff)
	}
}

func TestOnce_Bounded(t *testing.T) {
	var o Once
	n := 0
	for i := range maxWarned + 10 {
		o.Warn(fmt.Sprint("m", i), func(...any) { n++ })
	}
	if n != maxWarned {
		t.Errorf("logged %d distinct messages, want the bound %d", n, maxWarned)
	}
}
