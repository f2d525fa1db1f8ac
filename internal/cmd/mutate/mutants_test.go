//go:build unix

package main

import (
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"testing"
)

const sample = `package p

import "log"

const limit = 16

func f(a, b int, ok bool) int {
	log.Printf("x")
	if a < b && ok {
		a++
	}
	switch {
	case ok:
		return a
	}
	b = a
	if a > 100 {
		log.Printf("big")
	}
	switch a {
	case 1:
		log.Printf("one")
	default:
		log.Printf("other")
	}
	return b + 1
}
`

func TestFileMutants(t *testing.T) {
	ms, err := fileMutants("p.go", []byte(sample), allKinds, regexp.MustCompile(`^Printf$`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.kind+" "+m.orig+" -> "+m.repl)
		// Every mutant is still valid Go syntax.
		if _, err := parser.ParseFile(token.NewFileSet(), "p.go", m.apply([]byte(sample)), 0); err != nil {
			t.Errorf("%v does not parse: %v", m, err)
		}
	}
	want := []string{
		"const 16 -> 17", "const 16 -> 15",
		"compare < -> >=", "boundary < -> <=",
		"logical && -> ||",
		"negate a < b && ok -> !(a < b && ok)",
		"drop a++ -> ",
		"negate ok -> !(ok)", // the case
		"drop return a -> ",
		"drop b = a -> ", "drop return b + 1 -> ",
		"const 1 -> 2", "const 1 -> 0",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("mutants:\n got %q\nwant %q", got, want)
	}
	// Nothing of the conditions that only choose what to log is mutated
	// (100 and 1 would otherwise show up as constants).
	for _, m := range ms {
		if m.kind == kindDrop && m.orig == `log.Printf("x")` {
			t.Errorf("a skipped call was dropped: %v", m)
		}
	}
}
