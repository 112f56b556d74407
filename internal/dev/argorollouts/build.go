// Package argorollouts builds Argo Rollouts' controller from the Go module proxy (pinned, cached like the local
// control plane), installs its CRDs into a cluster and runs the controller out of cluster against a kubeconfig:
// the benchmark runs the same canary release with it and with canaryline, on one control plane.
package argorollouts

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

// Module and Version pin the Argo Rollouts release built from the Go module proxy.
// EnvTests set to 1 runs the tests that build Argo Rollouts' controller (and run it): they take 13 minutes on a
// cold cache, so the test suite leaves them to `make bench`, which builds and runs it anyway.
const EnvTests = "CANARYLINE_ARGO_TESTS"

const (
	Module      = "github.com/argoproj/argo-rollouts"
	Version     = "v1.10.2"
	mainPackage = Module + "/cmd/rollouts-controller"
	// recipe is bumped whenever the way the controller is built changes, so an old cache is not reused.
	recipe = "r1"
)

// Build is a built controller and the CRDs of the same release.
type Build struct {
	Controller string // the rollouts-controller binary
	CRDs       string // a directory of the release's CRD manifests (manifests/crds/*-crd.yaml)
}

// Root is where Version is cached under cacheDir: <cacheDir>/argo-rollouts/<version>/.
func Root(cacheDir string) string { return filepath.Join(cacheDir, "argo-rollouts", Version) }

func paths(cacheDir string) Build {
	dir := filepath.Join(Root(cacheDir), recipe)
	return Build{Controller: filepath.Join(dir, "bin", "rollouts-controller"), CRDs: filepath.Join(dir, "crds")}
}

func (b Build) complete() bool {
	crds, _ := filepath.Glob(filepath.Join(b.CRDs, "*.yaml"))
	return gobuild.Usable(b.Controller) && len(crds) > 0
}

// Ensure returns the cached controller and CRDs, building them first when the cache has none (13 min cold on 2
// cores shared with other work, progress to log every 30 s; 1 s cached). Concurrent callers wait for one build.
func Ensure(ctx context.Context, cacheDir string, log io.Writer) (Build, error) {
	if log == nil {
		log = io.Discard
	}
	if cacheDir == "" {
		return Build{}, fmt.Errorf("argorollouts: no cache directory to build Argo Rollouts into")
	}
	out := paths(cacheDir)
	root := Root(cacheDir)
	err := gobuild.Cached(ctx, root, "argorollouts", log, out.complete, func() error {
		b := &builder{root: filepath.Join(root, recipe), run: gobuild.NewRunner("argorollouts", filepath.Join(root, "build.log"), log, "CGO_ENABLED=0")}
		fmt.Fprintf(log, "argorollouts: building Argo Rollouts' controller (%s@%s) into %s (first run only)\n", Module, Version, root)
		if err := b.build(ctx, out); err != nil {
			return err
		}
		if _, err := Help(ctx, out.Controller); err != nil {
			return fmt.Errorf("argorollouts: the built %s does not run: %w", out.Controller, err)
		}
		fmt.Fprintf(log, "argorollouts: built in %s\n", b.run.Elapsed().Round(time.Second))
		return nil
	})
	return out, err
}

type builder struct {
	root string
	run  *gobuild.Runner
}

// build copies the module (its go line lowered to the local toolchain's when newer: Go does not build a module
// that asks for a newer toolchain, and GOTOOLCHAIN=local downloads none), then builds cmd/rollouts-controller in a
// scratch module that requires it and repeats its replace directives (those of a dependency are ignored: k8s.io/*
// staging modules are required as v0.0.0 and only the replaces pin them).
func (b *builder) build(ctx context.Context, out Build) error {
	src, dir := filepath.Join(b.root, "argo-rollouts-src"), filepath.Join(b.root, "src")
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		gomod, err := copyModule(ctx, src)
		if err != nil {
			return err
		}
		extra := "require " + Module + " " + Version + "\n\nreplace " + Module + " => ../argo-rollouts-src\n\n" + Replaces(gomod)
		if err := gobuild.WriteScratchModule(dir, "canaryline.local/argorolloutsbuild", []string{mainPackage}, extra); err != nil {
			return err
		}
		if err := b.run.Go(ctx, "resolve "+Module+"@"+Version+" dependencies", dir, "mod", "tidy"); err != nil {
			_ = os.Remove(filepath.Join(dir, "go.sum")) // the next attempt starts over
			return err
		}
	}
	if err := gobuild.InstallDir(out.CRDs, func(tmp string) error { return copyCRDs(src, tmp) }); err != nil {
		return err
	}
	const v = Module + "/utils/version"
	ldflags := strings.Join([]string{"-s", "-w", "-X", v + ".version=" + strings.TrimPrefix(Version, "v"),
		"-X", v + ".buildDate=" + time.Now().UTC().Format(time.RFC3339), "-X", v + ".gitTreeState=module-proxy"}, " ")
	return gobuild.InstallFile(out.Controller, func(tmp string) error {
		return b.run.Go(ctx, "build rollouts-controller", dir, "build", "-trimpath", "-ldflags="+ldflags, "-o", tmp, mainPackage)
	})
}

// copyModule downloads Module@Version and extracts its zip into dst, with the go line lowered to the local
// toolchain's when it asks for a newer one; it returns the module's own go.mod.
func copyModule(ctx context.Context, dst string) ([]byte, error) {
	// go mod download reports an error for a module needing a newer toolchain, but still downloads its zip.
	out, _ := gobuild.Output(ctx, os.TempDir(), "mod", "download", "-json", Module+"@"+Version)
	var info struct{ Zip, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Zip == "" {
		return nil, fmt.Errorf("download %s@%s: no module zip: %s", Module, Version, info.Error)
	}
	if err := os.RemoveAll(dst); err != nil {
		return nil, err
	}
	if err := unzipModule(info.Zip, Module+"@"+Version+"/", dst); err != nil {
		return nil, fmt.Errorf("extract %s: %w", info.Zip, err)
	}
	gomod, err := os.ReadFile(filepath.Join(dst, "go.mod"))
	if err != nil {
		return nil, err
	}
	goVersion, err := gobuild.Output(ctx, os.TempDir(), "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	local := strings.TrimPrefix(strings.TrimSpace(string(goVersion)), "go")
	if i := strings.IndexAny(local, " -"); i > 0 { // devel or experiment suffixes
		local = local[:i]
	}
	return gomod, os.WriteFile(filepath.Join(dst, "go.mod"), LowerGo(gomod, local), 0o644)
}

// unzipModule extracts the files under prefix of a module zip into dst.
func unzipModule(zipPath, prefix, dst string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		rel, ok := strings.CutPrefix(f.Name, prefix)
		if !ok || rel == "" || strings.HasSuffix(f.Name, "/") || strings.Contains(rel, "..") {
			continue
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyCRDs copies the release's CRD manifests (manifests/crds/*-crd.yaml) from the module source into dst.
func copyCRDs(src, dst string) error {
	files, err := filepath.Glob(filepath.Join(src, "manifests", "crds", "*-crd.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s/manifests/crds", src)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Replaces returns the replace directives of a go.mod (single lines and blocks), one `replace` line each.
func Replaces(gomod []byte) string {
	var b strings.Builder
	in := false
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "replace (":
			in = true
		case in && line == ")":
			in = false
		case in && strings.Contains(line, "=>"):
			b.WriteString("replace " + line + "\n")
		case strings.HasPrefix(line, "replace ") && strings.Contains(line, "=>"):
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// LowerGo rewrites a go.mod's go line to local when it asks for a newer Go, and drops its toolchain line.
func LowerGo(gomod []byte, local string) []byte {
	lines := strings.Split(string(gomod), "\n")
	var out []string
	for _, l := range lines {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "go "); ok && newer(strings.TrimSpace(v), local) {
			l = "go " + local
		}
		if strings.HasPrefix(strings.TrimSpace(l), "toolchain ") {
			continue
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

// newer reports whether Go version a (1.26.10) is newer than b (1.26.8), comparing numerically.
func newer(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			fmt.Sscan(as[i], &x)
		}
		if i < len(bs) {
			fmt.Sscan(bs[i], &y)
		}
		if x != y {
			return x > y
		}
	}
	return false
}
