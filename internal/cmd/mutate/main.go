//go:build unix

// Command mutate measures whether a package's tests catch bugs: it changes
// the package's code one small mutation at a time (a comparison flipped, a
// condition negated, && and || swapped, a statement dropped, an integer
// constant moved by one), runs the package's tests on each mutant and
// reports the mutants no test caught.
//
//	go run ./internal/cmd/mutate [flags] <package dir>
//
// It works on scratch copies of the enclosing workspace (the directory of
// go.work, or else of the package's go.mod), one per worker, and never writes
// to the working tree. Each mutated file is restored before the next mutant,
// and the scratch copies are removed at the end, also on SIGINT or SIGTERM.
//
// Efficacy is killed / (killed + survived). Mutants that do not compile are
// "not viable" and mutants whose tests outrun the timeout are "timed out";
// neither counts. The exit status is 1 when efficacy is below -min.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

type outcome int

const (
	killed outcome = iota
	survived
	timedOut
	notViable
)

var outcomeNames = [...]string{"KILLED", "SURVIVED", "TIMED OUT", "NOT VIABLE"}

func (o outcome) String() string { return outcomeNames[o] }

type config struct {
	root, rel string // the copied tree, and the package directory within it
	timeout   time.Duration
	race      bool
	run       string
}

func main() {
	var (
		timeout   = flag.Duration("timeout", 0, "per-mutant test timeout (0: 5x the unmutated run, at least 30s)")
		workers   = flag.Int("workers", 1, "mutants tested in parallel, each in its own scratch copy")
		kinds     = flag.String("kinds", strings.Join(allKinds, ","), "mutation kinds to apply")
		skipCalls = flag.String("skip-calls", `^(Infof|Warningf|Errorf|Logf|logf|warningf|Info|Warning|Error)$`, "calls never dropped (logging)")
		run       = flag.String("run", "", "go test -run pattern")
		race      = flag.Bool("race", false, "run the tests with -race")
		files     = flag.String("files", "", "only mutate files whose name matches this regexp")
		only      = flag.String("only", "", "only test the mutants listed in this file (e.g. the SURVIVED lines of an earlier run's output)")
		list      = flag.Bool("list", false, "list the mutants and exit")
		verbose   = flag.Bool("v", false, "print every mutant's outcome, not only the survivors")
		minEff    = flag.Float64("min", 0, "exit 1 if efficacy (percent) is below this")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: mutate [flags] <package dir>\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := mutate(flag.Arg(0), *timeout, *workers, strings.Split(*kinds, ","), *skipCalls, *run, *race, *files, *only, *list, *verbose, *minEff); err != nil {
		fmt.Fprintf(os.Stderr, "mutate: %v\n", err)
		os.Exit(1)
	}
}

func mutate(pkg string, timeout time.Duration, workers int, kinds []string, skipCalls, run string, race bool, files, only string, list, verbose bool, minEff float64) error {
	for _, k := range kinds {
		if !contains(allKinds, k) {
			return fmt.Errorf("kinds: %q, must be some of %s", k, strings.Join(allKinds, ","))
		}
	}
	if workers < 1 {
		return fmt.Errorf("workers: %d, must be >= 1", workers)
	}
	skip, err := regexp.Compile(skipCalls)
	if err != nil {
		return fmt.Errorf("skip-calls: %v", err)
	}
	fileRE, err := regexp.Compile(files)
	if err != nil {
		return fmt.Errorf("files: %v", err)
	}
	dir, err := filepath.Abs(pkg)
	if err != nil {
		return err
	}
	all, err := findMutants(dir, kinds, skip)
	if err != nil {
		return err
	}
	var listed string
	if only != "" {
		b, err := os.ReadFile(only)
		if err != nil {
			return err
		}
		listed = string(b)
	}
	var mutants []mutant
	for _, m := range all {
		if fileRE.MatchString(m.file) && (only == "" || strings.Contains(listed, m.String())) {
			mutants = append(mutants, m)
		}
	}
	if list {
		for _, m := range mutants {
			fmt.Println(m)
		}
		fmt.Printf("%d mutants\n", len(mutants))
		return nil
	}
	root, err := treeRoot(dir)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(root, dir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var scratch []string
	defer func() {
		for _, s := range scratch {
			os.RemoveAll(s)
		}
	}()
	for range workers {
		s, err := os.MkdirTemp("", "mutate-")
		if err != nil {
			return err
		}
		scratch = append(scratch, s)
		if err := copyTree(root, s); err != nil {
			return err
		}
	}

	cfg := config{root: scratch[0], rel: rel, timeout: 10 * time.Minute, race: race, run: run}
	start := time.Now()
	if o, out := runTests(ctx, cfg); o != survived {
		return fmt.Errorf("the unmutated tests of %s do not pass (%v):\n%s", pkg, o, out)
	}
	if timeout == 0 {
		timeout = max(30*time.Second, 5*time.Since(start))
	}
	fmt.Printf("mutate: %s: %d mutants, %d worker(s), timeout %v per run\n", pkg, len(mutants), workers, timeout.Round(time.Second))

	results := make([]outcome, len(mutants))
	done := make([]bool, len(mutants))
	jobs := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var n int
	for _, s := range scratch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg
			c.root, c.timeout = s, timeout
			for i := range jobs {
				o, err := testMutant(ctx, c, mutants[i])
				if err != nil || ctx.Err() != nil {
					if err != nil {
						fmt.Fprintf(os.Stderr, "mutate: %v\n", err)
					}
					continue
				}
				mu.Lock()
				results[i], done[i] = o, true
				n++
				if verbose || o == survived || o == timedOut {
					fmt.Printf("[%d/%d] %-10s %s\n", n, len(mutants), o, mutants[i])
				}
				mu.Unlock()
			}
		}()
	}
	for i := range mutants {
		select {
		case jobs <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()

	var count [4]int
	for i, o := range results {
		if done[i] {
			count[o]++
		}
	}
	eff := 0.0
	if count[killed]+count[survived] > 0 {
		eff = 100 * float64(count[killed]) / float64(count[killed]+count[survived])
	}
	fmt.Printf("mutate: %s: %d tested of %d: %d killed, %d survived, %d timed out, %d not viable; efficacy %.1f%% in %v\n",
		pkg, count[0]+count[1]+count[2]+count[3], len(mutants), count[killed], count[survived], count[timedOut], count[notViable], eff, time.Since(start).Round(time.Second))
	if ctx.Err() != nil {
		return errors.New("interrupted; the figures above are partial")
	}
	if eff < minEff {
		return fmt.Errorf("efficacy %.1f%%, must be at least %.1f%%", eff, minEff)
	}
	return nil
}

// testMutant applies m in the scratch tree of c, runs the tests and puts the
// file back whatever happened.
func testMutant(ctx context.Context, c config, m mutant) (outcome, error) {
	path := filepath.Join(c.root, c.rel, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, m.apply(orig), 0o644); err != nil {
		return 0, err
	}
	defer os.WriteFile(path, orig, 0o644)
	o, _ := runTests(ctx, c)
	return o, nil
}

// runTests runs the package's tests in c.root; survived means they passed.
func runTests(ctx context.Context, c config) (outcome, string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	args := []string{"test", "-count=1", "-vet=off", "-failfast"}
	if c.race {
		args = append(args, "-race")
	}
	if c.run != "" {
		args = append(args, "-run", c.run)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./"+filepath.ToSlash(c.rel))...)
	cmd.Dir = c.root
	if _, err := os.Stat(filepath.Join(c.root, "go.work")); err != nil {
		cmd.Env = append(os.Environ(), "GOWORK=off")
	}
	// The test binary runs in the go command's process group: kill both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	switch {
	case err == nil:
		return survived, string(out)
	case ctx.Err() != nil:
		return timedOut, string(out)
	case strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "[setup failed]"):
		return notViable, string(out)
	}
	return killed, string(out)
}

// treeRoot returns the directory to copy: the nearest enclosing one with a
// go.work (so nested modules replaced by relative paths still resolve), or
// else the nearest with a go.mod.
func treeRoot(dir string) (string, error) {
	mod := ""
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && mod == "" {
			mod = d
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	if mod == "" {
		return "", fmt.Errorf("%s: no go.mod or go.work above it", dir)
	}
	return mod, nil
}

// copyTree copies the regular files of src into dst, leaving out .git.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
