package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

// TknVersion is the tektoncd/cli release TknBinary builds.
const TknVersion = "v0.43.0"

// DefaultCacheDir is where built tools are kept: $CANARYLINE_CACHE_DIR, else <user cache dir>/canaryline.
func DefaultCacheDir() (string, error) { return gobuild.DefaultCacheDir() }

// TknBinary returns the path of the tkn CLI (tektoncd/cli TknVersion) under cacheDir (DefaultCacheDir when empty),
// at cacheDir/tkn/<version>/bin/tkn, building it from the Go module proxy first when it is not there: about 3 min on
// 2 cores with a cold Go build cache. `go install github.com/tektoncd/cli/cmd/tkn@version` cannot do it (tektoncd/cli's
// go.mod has replace directives), so the build uses a scratch module that requires tektoncd/cli and repeats those
// replace directives. Concurrent callers wait (flock) for one build. Progress lines go to log.
func TknBinary(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	root, err := toolRoot(cacheDir, "tkn", TknVersion)
	if err != nil {
		return "", err
	}
	return scratchBuild{
		Name:         "tkn",
		Root:         root,
		Module:       "github.com/tektoncd/cli",
		Version:      TknVersion,
		Pkg:          "github.com/tektoncd/cli/cmd/tkn",
		LDFlags:      "-s -w -X github.com/tektoncd/cli/pkg/cmd/version.clientVersion=" + TknVersion,
		CopyReplaces: true,
		Estimate:     "about 3 min on 2 cores, less with a warm Go build cache",
	}.ensure(ctx, log)
}

// toolRoot is where a tool's version is cached: cacheDir/name/version, cacheDir being DefaultCacheDir when empty.
func toolRoot(cacheDir, name, version string) (string, error) {
	if cacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return "", err
		}
		cacheDir = d
	}
	return filepath.Join(cacheDir, name, version), nil
}

// scratchBuild builds one Go binary from an upstream module in a module of its own, so its dependencies resolve as
// upstream says and the project's go.mod is untouched.
type scratchBuild struct {
	Name         string            // the binary's name, also the prefix of progress lines
	Root         string            // cache directory: Root/bin/Name is the result; Root/build.log the go output
	Module       string            // the upstream module the scratch module requires
	Version      string            // its version
	Pkg          string            // the main package to build; "." for a main package among Files
	Files        map[string]string // further files of the scratch module (e.g. main.go)
	LDFlags      string
	CopyReplaces bool   // copy Module's replace directives (those to other modules, not local paths)
	Estimate     string // how long a first build takes, for the first progress line
}

func (s scratchBuild) ensure(ctx context.Context, log io.Writer) (string, error) {
	bin := filepath.Join(s.Root, "bin", s.Name)
	err := gobuild.Cached(ctx, s.Root, s.Name, log, func() bool { return usable(bin) }, func() error {
		r := &runner{Runner: gobuild.NewRunner(s.Name, filepath.Join(s.Root, "build.log"), log, "GOFLAGS=-mod=mod -buildvcs=false")}
		fmt.Fprintf(log, "%s: building %s@%s into %s (first run only: %s)\n", s.Name, s.Module, s.Version, s.Root, s.Estimate)
		src := filepath.Join(s.Root, "src")
		if err := s.writeModule(ctx, r, src); err != nil {
			return err
		}
		if _, err := r.goCmd(ctx, "resolve the modules of "+s.Module+"@"+s.Version, src, "mod", "tidy"); err != nil {
			return err
		}
		if err := gobuild.InstallDir(filepath.Join(s.Root, "bin"), func(tmp string) error { return s.compile(ctx, r, src, tmp) }); err != nil {
			return err
		}
		fmt.Fprintf(log, "%s: built %s in %s\n", s.Name, bin, r.Elapsed().Round(time.Second))
		return nil
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

// writeModule writes the scratch module into src (emptied first): its go.mod requiring Module (with Module's
// replace directives when CopyReplaces), a tools.go importing Pkg, and Files.
func (s scratchBuild) writeModule(ctx context.Context, r *runner, src string) error {
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	var gomod strings.Builder
	fmt.Fprintf(&gomod, "module canaryline.local/%sbuild\n\ngo 1.26.0\n\nrequire %s %s\n", s.Name, s.Module, s.Version)
	if s.CopyReplaces {
		reps, err := s.replaces(ctx, r, src)
		if err != nil {
			return err
		}
		for _, rep := range reps {
			fmt.Fprintf(&gomod, "\nreplace %s\n", rep)
		}
	}
	files := map[string]string{"go.mod": gomod.String()}
	if s.Pkg != "." {
		files["tools.go"] = "//go:build tools\n\npackage tools\n\nimport _ \"" + s.Pkg + "\"\n"
	}
	for n, c := range s.Files {
		files[n] = c
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(src, n), []byte(c), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// compile builds Pkg in the scratch module src into dir/Name.
func (s scratchBuild) compile(ctx context.Context, r *runner, src, dir string) error {
	args := []string{"build", "-trimpath"}
	if s.LDFlags != "" {
		args = append(args, "-ldflags="+s.LDFlags)
	}
	args = append(args, "-o", filepath.Join(dir, s.Name), s.Pkg)
	_, err := r.goCmd(ctx, "compile "+s.Name, src, args...)
	return err
}

// replaces returns Module's replace directives that point at other modules ("old [v] => new v"). Replacements by
// local paths cannot be repeated outside the upstream repository and are an error.
func (s scratchBuild) replaces(ctx context.Context, r *runner, dir string) ([]string, error) {
	mod := s.Module + "@" + s.Version
	out, err := r.goCmd(ctx, "download "+mod, dir, "mod", "download", "-json", mod)
	var info struct{ GoMod, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return nil, fmt.Errorf("download %s: %s", mod, info.Error)
	}
	if err != nil {
		return nil, err
	}
	if info.GoMod == "" {
		return nil, fmt.Errorf("download %s: no go.mod in the answer", mod)
	}
	data, err := os.ReadFile(info.GoMod)
	if err != nil {
		return nil, err
	}
	return parseReplaces(data)
}

// parseReplaces returns the replace directives of a go.mod, without the keyword.
func parseReplaces(gomod []byte) ([]string, error) {
	var out []string
	inBlock := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		var rep string
		switch {
		case inBlock && line == ")":
			inBlock = false
			continue
		case inBlock:
			rep = line
		case line == "replace (":
			inBlock = true
			continue
		case strings.HasPrefix(line, "replace "):
			rep = strings.TrimSpace(strings.TrimPrefix(line, "replace "))
		}
		if rep == "" {
			continue
		}
		parts := strings.SplitN(rep, "=>", 2)
		if len(parts) != 2 {
			return nil, fmt.Errorf("cannot read the replace directive %q", rep)
		}
		target := strings.Fields(parts[1])
		if len(target) != 2 {
			return nil, fmt.Errorf("the replace directive %q points at a local directory: it cannot be repeated in a scratch module", rep)
		}
		out = append(out, strings.Join(strings.Fields(parts[0]), " ")+" => "+strings.Join(target, " "))
	}
	return out, sc.Err()
}

func usable(path string) bool { return gobuild.Usable(path) }

// runner runs go commands for one build (gobuild.Runner), repeating a command when the checksum database has
// no record of some module versions (see goCmd).
type runner struct {
	*gobuild.Runner
	noSumDB []string // module paths the checksum database does not know
}

// sumDB404 matches the go command's error when the checksum database has no record of a module version, e.g.
// "verifying module: github.com/tektoncd/chains@v0.26.0: reading https://.../lookup/github.com/tektoncd/chains@v0.26.0:
// 404 Not Found".
var sumDB404 = regexp.MustCompile(`verifying (?:go\.mod|module): ([^@\s]+)@[^:\s]+: reading \S+/lookup/\S+: 404 Not Found`)

// goCmd runs one go command in dir and returns its stdout; the output is logged and a progress line is printed
// every 30 s. When the checksum database answers 404 for some module versions (it has no record of them; this
// happens with a mirror of the module proxy whose checksum database lags), the command is repeated with those
// module paths, and only those, in GONOSUMDB: their hashes then come from the module proxy and are recorded in the
// scratch module's go.sum.
func (r *runner) goCmd(ctx context.Context, step, dir string, args ...string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		stdout, combined, err := r.goOnce(ctx, step, dir, args...)
		if err == nil {
			return stdout, nil
		}
		var fresh []string
		for _, m := range sumDB404.FindAllStringSubmatch(string(combined), -1) {
			if !contains(r.noSumDB, m[1]) && !contains(fresh, m[1]) {
				fresh = append(fresh, m[1])
			}
		}
		if len(fresh) == 0 || attempt >= 10 || ctx.Err() != nil {
			return stdout, err
		}
		sort.Strings(fresh)
		fmt.Fprintf(r.Log, "%s: the checksum database has no record of %s (404); using the module proxy's checksums for them\n",
			r.Name, strings.Join(fresh, ", "))
		r.noSumDB = append(r.noSumDB, fresh...)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *runner) goOnce(ctx context.Context, step, dir string, args ...string) (stdout, combined []byte, err error) {
	var env []string
	if len(r.noSumDB) > 0 {
		list := r.noSumDB
		if prev := os.Getenv("GONOSUMDB"); prev != "" {
			list = append([]string{prev}, list...)
		}
		env = append(env, "GONOSUMDB="+strings.Join(list, ","))
	}
	return r.Run(ctx, step, dir, env, args...)
}

func lastLines(s string, n int) string { return gobuild.LastLines(s, n) }
