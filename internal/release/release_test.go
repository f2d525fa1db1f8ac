package release_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const root = "../.."

// releaseVersion is what VERSION must hold: a release, not a pre-release or
// pseudo-version; v2 and above would need a /vN module path.
var releaseVersion = regexp.MustCompile(`^v[01]\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// goMod is the part of `go mod edit -json` this package reads.
type goMod struct {
	Module  struct{ Path string }
	Require []struct{ Path, Version string }
	Replace []struct {
		Old struct{ Path, Version string }
		New struct{ Path, Version string }
	}

	dir  string // directory of the go.mod, relative to root
	text []byte // the go.mod as written
}

func readVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(b))
	if !releaseVersion.MatchString(v) {
		t.Fatalf("VERSION: %q, must be a release version vX.Y.Z with X 0 or 1", v)
	}
	return v
}

// modules returns every go.mod of the repository, the root one first.
func modules(t *testing.T) []goMod {
	t.Helper()
	var mods []goMod
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		m, err := parse(path)
		if err != nil {
			return err
		}
		m.dir, _ = filepath.Rel(root, filepath.Dir(path))
		mods = append(mods, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mods, func(m goMod) bool { return m.dir == "." })
	if i < 0 {
		t.Fatalf("no root go.mod in %s", root)
	}
	mods[0], mods[i] = mods[i], mods[0]
	return mods
}

func parse(path string) (goMod, error) {
	var m goMod
	out, err := exec.Command("go", "mod", "edit", "-json", path).Output()
	if err != nil {
		return m, fmt.Errorf("go mod edit -json %s: %v", path, err)
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return m, fmt.Errorf("%s: %v", path, err)
	}
	m.text, err = os.ReadFile(path)
	return m, err
}

// TestNestedModules_RequireReleaseWithLocalReplace checks the rule that
// makes `go get github.com/fulcrum-lb/fulcrum/resolver/etcd` work once
// vX.Y.Z and resolver/etcd/vX.Y.Z are tagged: a nested module requires the
// version in VERSION of each module of this repository it uses (v0.0.0 or
// a pseudo-version does not exist for a user), and replaces it with its
// local directory for development only.
func TestNestedModules_RequireReleaseWithLocalReplace(t *testing.T) {
	version := readVersion(t)
	mods := modules(t)
	dirOf := make(map[string]string)
	for _, m := range mods {
		dirOf[m.Module.Path] = m.dir
	}
	for _, m := range mods[1:] {
		for _, r := range m.Require {
			dir, ours := dirOf[r.Path]
			if !ours {
				continue
			}
			if r.Version != version {
				t.Errorf("%s/go.mod: require %s %s, must be %s (VERSION): a user's go get cannot resolve it without the replace; run .ci/set-version %s", m.dir, r.Path, r.Version, version, version)
			}
			replaced := false
			for _, rep := range m.Replace {
				if rep.Old.Path != r.Path {
					continue
				}
				replaced = true
				if rep.New.Version != "" || !strings.HasPrefix(rep.New.Path, ".") ||
					filepath.Clean(filepath.Join(m.dir, rep.New.Path)) != dir {
					t.Errorf("%s/go.mod: replace %s => %s %s, must be the relative path of its directory %s", m.dir, r.Path, rep.New.Path, rep.New.Version, dir)
				}
			}
			if !replaced {
				t.Errorf("%s/go.mod: requires %s but does not replace it with its directory %s (development would use the released code)", m.dir, r.Path, dir)
			}
		}
	}
}

// TestNestedModules_ResolveWithoutReplace does what a user's go get does
// after the release is tagged: every nested module's go.mod, without its
// replace directives, resolves its module graph against a proxy that holds
// this repository's modules at VERSION only (and everything else from the
// module cache or the usual proxy).
func TestNestedModules_ResolveWithoutReplace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command once per nested module")
	}
	version := readVersion(t)
	mods := modules(t)
	proxy := releaseProxy(t, mods, version)
	for _, m := range mods[1:] {
		t.Run(m.dir, func(t *testing.T) {
			if err := resolve(t, m, mods, proxy); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestResolve_CatchesUnreleasedRequirement shows that the resolution check
// fails on a nested module that requires the root module at v0.0.0 (the
// development placeholder) and passes once it requires VERSION.
func TestResolve_CatchesUnreleasedRequirement(t *testing.T) {
	version := readVersion(t)
	mods := modules(t)
	proxy := releaseProxy(t, mods, version)
	rootPath := mods[0].Module.Path
	fake := func(v string) goMod {
		text := fmt.Sprintf("module example.com/user\n\ngo 1.26\n\nrequire %s %s\n\nreplace %s => ../..\n", rootPath, v, rootPath)
		return goMod{dir: "fake", text: []byte(text)}
	}
	err := resolve(t, fake("v0.0.0"), mods, proxy)
	if err == nil || !strings.Contains(err.Error(), rootPath+"@v0.0.0") {
		t.Errorf("requirement of v0.0.0: err = %v, want a failure naming %s@v0.0.0", err, rootPath)
	}
	if err := resolve(t, fake(version), mods, proxy); err != nil {
		t.Errorf("requirement of %s: %v", version, err)
	}
}

// releaseProxy writes a GOPROXY directory serving each module of the
// repository at version, with its current go.mod.
func releaseProxy(t *testing.T, mods []goMod, version string) string {
	t.Helper()
	dir := t.TempDir()
	for _, m := range mods {
		d := filepath.Join(dir, filepath.FromSlash(m.Module.Path), "@v") // paths are lower case: no escaping
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			"list":            version + "\n",
			version + ".info": fmt.Sprintf(`{"Version":%q,"Time":"2026-01-01T00:00:00Z"}`, version),
			version + ".mod":  string(m.text),
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// resolve copies m's go.mod (and go.sum) without the replaces of this
// repository's modules into a fresh directory and lists its module graph
// with a fresh module cache, outside the workspace.
func resolve(t *testing.T, m goMod, mods []goMod, proxy string) error {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), m.text, 0o644); err != nil {
		t.Fatal(err)
	}
	if sum, err := os.ReadFile(filepath.Join(root, m.dir, "go.sum")); err == nil {
		if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GOWORK=off",
			"GOTOOLCHAIN=local",
			"GOFLAGS=-mod=mod -modcacherw", // writable, so TempDir can remove it
			"GOMODCACHE="+filepath.Join(dir, "modcache"),
			"GOPROXY="+goproxy(t, proxy),
			"GOSUMDB=off", // the released go.sum lines do not exist yet
		)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("%s: go %s: %v\n%s", m.dir, strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}
	for _, o := range mods {
		if _, err := run("mod", "edit", "-dropreplace="+o.Module.Path); err != nil {
			return err
		}
	}
	_, err := run("list", "-m", "all")
	return err
}

// goproxy serves the repository's modules from proxy, and everything else
// from the local module cache's download directory (itself a valid proxy
// layout) or, failing that, the configured proxy.
func goproxy(t *testing.T, proxy string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE", "GOPROXY").Output()
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimSpace(string(out)), "\n")
	list := []string{"file://" + filepath.ToSlash(proxy), "file://" + filepath.ToSlash(filepath.Join(env[0], "cache", "download"))}
	if len(env) > 1 && env[1] != "" && env[1] != "off" {
		list = append(list, env[1])
	}
	return strings.Join(list, ",")
}
