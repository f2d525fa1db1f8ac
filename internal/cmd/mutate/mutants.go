//go:build unix

package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// mutant is one small change to one file: the bytes [start, end) of the file
// are replaced by repl.
type mutant struct {
	file       string // path relative to the package directory
	line, col  int
	kind       string // see the kinds below
	start, end int
	orig, repl string
}

func (m mutant) String() string {
	return fmt.Sprintf("%s:%d:%d %s: %q -> %q", m.file, m.line, m.col, m.kind, m.orig, m.repl)
}

// Kinds of mutation.
const (
	kindCompare  = "compare"  // a comparison operator flipped (== !=, < >=, ...)
	kindBoundary = "boundary" // a comparison's boundary moved (< <=, > >=)
	kindLogical  = "logical"  // && and || swapped
	kindNegate   = "negate"   // an if or case condition negated
	kindDrop     = "drop"     // a statement removed
	kindConst    = "const"    // an integer literal changed by +1 or -1
)

var allKinds = []string{kindCompare, kindBoundary, kindLogical, kindNegate, kindDrop, kindConst}

var (
	compareFlip  = map[token.Token]token.Token{token.EQL: token.NEQ, token.NEQ: token.EQL, token.LSS: token.GEQ, token.GEQ: token.LSS, token.GTR: token.LEQ, token.LEQ: token.GTR}
	boundaryMove = map[token.Token]token.Token{token.LSS: token.LEQ, token.LEQ: token.LSS, token.GTR: token.GEQ, token.GEQ: token.GTR}
)

// findMutants parses the non-test Go files of dir and returns every mutant
// of the given kinds. Calls whose function name matches skipCalls (logging)
// are never dropped: removing a log line changes nothing a test can check.
func findMutants(dir string, kinds []string, skipCalls *regexp.Regexp) ([]mutant, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var out []mutant
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms, err := fileMutants(filepath.Base(name), src, kinds, skipCalls)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func fileMutants(name string, src []byte, kinds []string, skipCalls *regexp.Regexp) ([]mutant, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []mutant
	// Conditions that only decide whether something is logged are not
	// mutated: no test can see the difference (see logOnly).
	var quiet [][2]token.Pos
	add := func(kind string, from, to token.Pos, repl string) {
		if !slices.Contains(kinds, kind) {
			return
		}
		for _, q := range quiet {
			if from >= q[0] && to <= q[1] {
				return
			}
		}
		p := fset.Position(from)
		start, end := p.Offset, fset.Position(to).Offset
		out = append(out, mutant{file: name, line: p.Line, col: p.Column, kind: kind,
			start: start, end: end, orig: string(src[start:end]), repl: repl})
	}
	text := func(n ast.Node) string {
		return string(src[fset.Position(n.Pos()).Offset:fset.Position(n.End()).Offset])
	}
	negate := func(e ast.Expr) {
		if b, ok := e.(*ast.BinaryExpr); ok && compareFlip[b.Op] != 0 {
			return // flipping the operator is the same mutant
		}
		add(kindNegate, e.Pos(), e.End(), "!("+text(e)+")")
	}
	dropStmts := func(list []ast.Stmt) {
		for _, s := range list {
			switch s := s.(type) {
			case *ast.ExprStmt:
				if call, ok := s.X.(*ast.CallExpr); ok && skipCalls != nil && skipCalls.MatchString(funcName(call)) {
					continue
				}
			case *ast.AssignStmt:
				if s.Tok == token.DEFINE {
					continue // the names it declares are used below
				}
			case *ast.IncDecStmt, *ast.ReturnStmt, *ast.SendStmt, *ast.BranchStmt, *ast.DeferStmt, *ast.GoStmt:
			default:
				continue
			}
			add(kindDrop, s.Pos(), s.End(), "")
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ImportSpec:
			return false
		case *ast.BinaryExpr:
			if op, ok := compareFlip[n.Op]; ok {
				add(kindCompare, n.OpPos, n.OpPos+token.Pos(len(n.Op.String())), op.String())
			}
			if op, ok := boundaryMove[n.Op]; ok {
				add(kindBoundary, n.OpPos, n.OpPos+token.Pos(len(n.Op.String())), op.String())
			}
			switch n.Op {
			case token.LAND:
				add(kindLogical, n.OpPos, n.OpPos+2, "||")
			case token.LOR:
				add(kindLogical, n.OpPos, n.OpPos+2, "&&")
			}
		case *ast.IfStmt:
			if n.Else == nil && logOnly(n.Body.List, skipCalls) {
				quiet = append(quiet, [2]token.Pos{n.Cond.Pos(), n.Cond.End()})
			}
			negate(n.Cond)
		case *ast.SwitchStmt:
			allLog := true
			for _, c := range n.Body.List {
				allLog = allLog && logOnly(c.(*ast.CaseClause).Body, skipCalls)
			}
			if allLog {
				quiet = append(quiet, [2]token.Pos{n.Pos(), n.End()})
			}
			if n.Tag == nil {
				for _, c := range n.Body.List {
					for _, e := range c.(*ast.CaseClause).List {
						negate(e)
					}
				}
			}
		case *ast.BlockStmt:
			dropStmts(n.List)
		case *ast.CaseClause:
			dropStmts(n.Body)
		case *ast.CommClause:
			dropStmts(n.Body)
		case *ast.BasicLit:
			if n.Kind != token.INT {
				break
			}
			v, err := strconv.ParseInt(n.Value, 0, 64)
			if err != nil {
				break
			}
			// -1 of an unsigned 0 does not compile: counted as not viable.
			add(kindConst, n.Pos(), n.End(), strconv.FormatInt(v+1, 10))
			add(kindConst, n.Pos(), n.End(), strconv.FormatInt(v-1, 10))
		}
		return true
	})
	return out, nil
}

// logOnly says whether stmts consist only of calls that skipCalls matches.
func logOnly(stmts []ast.Stmt, skipCalls *regexp.Regexp) bool {
	if skipCalls == nil || len(stmts) == 0 {
		return false
	}
	for _, s := range stmts {
		e, ok := s.(*ast.ExprStmt)
		if !ok {
			return false
		}
		call, ok := e.X.(*ast.CallExpr)
		if !ok || !skipCalls.MatchString(funcName(call)) {
			return false
		}
	}
	return true
}

// funcName is the name of the function or method a call calls.
func funcName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// apply returns src with m applied.
func (m mutant) apply(src []byte) []byte {
	out := make([]byte, 0, len(src)+len(m.repl))
	out = append(out, src[:m.start]...)
	out = append(out, m.repl...)
	return append(out, src[m.end:]...)
}
