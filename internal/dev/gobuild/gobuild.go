// Package gobuild builds other projects' Go programs from the Go module proxy in scratch modules, and caches
// them: the local control plane, Prometheus, tkn. It holds what those builds share: the cache directory, a
// lock so that parallel test packages build once, go commands that log to a file and report progress, and the
// scratch module itself.
package gobuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultCacheDir is where built programs are kept: $CANARYLINE_CACHE_DIR, else the user cache directory.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("CANARYLINE_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory (set CANARYLINE_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "canaryline"), nil
}

// Lock takes an exclusive flock on path, saying once (as name) that it waits for another builder.
func Lock(ctx context.Context, path, name string, log io.Writer) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !said {
			fmt.Fprintf(log, "%s: another process is building it; waiting for it (%s)\n", name, path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Runner runs the go commands of one build: their output goes to LogFile, and progress (each step, then a line
// every 30 s) to Log, prefixed with Name.
type Runner struct {
	Name    string
	Log     io.Writer
	LogFile string
	// Env is added to the environment of every command (after GOFLAGS=-mod=mod and GOWORK=off).
	Env   []string
	start time.Time
}

// NewRunner starts a build's clock.
func NewRunner(name, logFile string, log io.Writer, env ...string) *Runner {
	return &Runner{Name: name, Log: log, LogFile: logFile, Env: env, start: time.Now()}
}

// Elapsed is the time since the build started.
func (r *Runner) Elapsed() time.Duration { return time.Since(r.start) }

// Go runs `go args...` in dir as the build step named step.
func (r *Runner) Go(ctx context.Context, step, dir string, args ...string) error {
	_, _, err := r.Run(ctx, step, dir, nil, args...)
	return err
}

// Run is Go with extra environment for this command, returning its stdout and its combined output.
func (r *Runner) Run(ctx context.Context, step, dir string, env []string, args ...string) (stdout, combined []byte, err error) {
	lf, err := os.OpenFile(r.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer lf.Close()
	fmt.Fprintf(lf, "== %s: go %s %s\n", step, strings.Join(args, " "), strings.Join(env, " "))
	var out, all bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off"), r.Env...), env...)
	cmd.Stdout = io.MultiWriter(&out, &all, lf)
	cmd.Stderr = io.MultiWriter(&all, lf)
	t0 := time.Now()
	fmt.Fprintf(r.Log, "%s: [%s] %s...\n", r.Name, r.Elapsed().Round(time.Second), step)
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: start go: %w", step, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return out.Bytes(), all.Bytes(), fmt.Errorf("%s: go %s: %w: %s (full log: %s)", step, strings.Join(args, " "), err,
					LastLines(all.String(), 8), r.LogFile)
			}
			fmt.Fprintf(r.Log, "%s: [%s] %s done in %s\n", r.Name, r.Elapsed().Round(time.Second), step, time.Since(t0).Round(time.Second))
			return out.Bytes(), all.Bytes(), nil
		case <-tick.C:
			fmt.Fprintf(r.Log, "%s: [%s] still working: %s (%s so far)\n", r.Name, r.Elapsed().Round(time.Second), step, time.Since(t0).Round(time.Second))
		}
	}
}

// Output runs a quick go command (go list, go mod download) without progress lines and returns its stdout.
func Output(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// WriteScratchModule writes, in dir, a module that requires nothing yet (go get adds it) and a tools.go that
// imports pkgs, so that `go mod tidy` resolves their dependencies as upstream says. extra is appended to go.mod
// (require and replace directives).
func WriteScratchModule(dir, module string, pkgs []string, extra string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	gomod := "module " + module + "\n\ngo 1.26.0\n"
	if extra != "" {
		gomod += "\n" + extra
	}
	var b strings.Builder
	b.WriteString("//go:build tools\n\npackage tools\n\nimport (\n")
	for _, p := range pkgs {
		b.WriteString("\t_ \"" + p + "\"\n")
	}
	b.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tools.go"), []byte(b.String()), 0o644)
}

// LastLines is the last n lines of s, without the go command's "downloading" lines.
func LastLines(s string, n int) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if !strings.HasPrefix(l, "go: downloading ") {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// Usable reports whether path is a non-empty executable file.
func Usable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Mode()&0o111 != 0
}

// Cached makes sure a cached build under root is there: it returns at once when present reports it is; else it
// creates root, takes the lock root/.lock (saying as name that it waits for another builder), asks present again
// (another process may have built it while this one waited) and only then calls build, holding the lock.
// Concurrent callers (parallel test packages) so wait for one build instead of building twice.
func Cached(ctx context.Context, root, name string, log io.Writer, present func() bool, build func() error) error {
	if present() {
		return nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("create cache directory %s: %w", root, err)
	}
	unlock, err := Lock(ctx, filepath.Join(root, ".lock"), name, log)
	if err != nil {
		return err
	}
	defer unlock()
	if present() { // built by another process while we waited
		return nil
	}
	return build()
}

// InstallDir makes the directory dst by building it in dst+".tmp" (emptied and created first) and renaming that
// into place, replacing what dst held: dst is never half made.
func InstallDir(dst string, build func(tmp string) error) error {
	tmp := dst + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := build(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// InstallFile makes the file dst by building it as dst+".tmp" and renaming that into place; the temporary file
// is removed when build fails.
func InstallFile(dst string, build func(tmp string) error) error {
	tmp := dst + ".tmp"
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := build(tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
