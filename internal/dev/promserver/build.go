package promserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

// Module and Version pin the Prometheus server built from the Go module proxy when the system has none.
// Prometheus publishes its Go module as v0.<major*100+minor>.<patch>: v0.309.1 is Prometheus 3.9.1.
const (
	Module  = "github.com/prometheus/prometheus"
	Version = "v0.309.1"
	// releaseVersion is what the built binary reports as its version (stamped with -ldflags).
	releaseVersion = "3.9.1"
	mainPackage    = Module + "/cmd/prometheus"
)

// SystemBinary is the path of Debian's (and most distributions') packaged Prometheus server.
const SystemBinary = "/usr/bin/prometheus"

// EnvBinary names an environment variable that, when set, overrides which Prometheus binary Binary returns.
const EnvBinary = "CANARYLINE_PROMETHEUS"

// DefaultCacheDir is where built binaries are kept: $CANARYLINE_CACHE_DIR, else <user cache dir>/canaryline
// (the same place internal/dev/devcluster uses).
func DefaultCacheDir() (string, error) { return gobuild.DefaultCacheDir() }

// buildKey names a build: the version and the discovery mechanisms compiled in (see discoveryOverlay).
const buildKey = Version + "_sd-file-http-kubernetes"

// cachedPath is where the binary built from the module proxy is kept.
func cachedPath(cacheDir string) string {
	return filepath.Join(cacheDir, "prometheus", buildKey, "bin", "prometheus")
}

// Lookup returns a Prometheus binary that is available without building anything: $CANARYLINE_PROMETHEUS when
// set, else /usr/bin/prometheus when it runs, else one already built into cacheDir. ok is false when there is none.
func Lookup(ctx context.Context, cacheDir string) (path string, ok bool) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, true
	}
	if runs(ctx, SystemBinary) {
		return SystemBinary, true
	}
	if p := cachedPath(cacheDir); usable(p) {
		return p, true
	}
	return "", false
}

// Binary returns a Prometheus server binary: $CANARYLINE_PROMETHEUS when set (it must run), else /usr/bin/prometheus
// (Debian's package `prometheus`) when present and `prometheus --version` succeeds, else one built from the Go
// module proxy and cached under cacheDir/prometheus/<version>/. Building takes about 2 minutes cold (the file, HTTP and Kubernetes discoveries only) on 2 cores and
// prints progress to log every 30 s; concurrent callers (parallel test packages) wait for a single build.
func Binary(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	if p := os.Getenv(EnvBinary); p != "" {
		if err := version(ctx, p); err != nil {
			return "", fmt.Errorf("$%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	if runs(ctx, SystemBinary) {
		return SystemBinary, nil
	}
	return built(ctx, cacheDir, log)
}

// KubernetesBinary is Binary for a server that discovers targets from a Kubernetes API server (Options.Kubernetes).
// Debian's package is built without Kubernetes discovery: /usr/bin/prometheus is used only when it has it (a
// short trial run with such a configuration says), else the one built from the Go module proxy, which has the file,
// HTTP and Kubernetes discoveries. $CANARYLINE_PROMETHEUS, when set, is used as it is.
func KubernetesBinary(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	if log == nil {
		log = io.Discard
	}
	if p := os.Getenv(EnvBinary); p != "" {
		return Binary(ctx, cacheDir, log)
	}
	if runs(ctx, SystemBinary) {
		if hasKubernetesSD(ctx, SystemBinary) {
			return SystemBinary, nil
		}
		fmt.Fprintf(log, "promserver: %s has no Kubernetes service discovery (Debian builds it without)\n", SystemBinary)
	}
	return built(ctx, cacheDir, log)
}

// built returns the binary built from the module proxy into cacheDir, building it when there is none.
func built(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	if cacheDir == "" {
		return "", errors.New("promserver: no cache directory to build Prometheus into")
	}
	bin := cachedPath(cacheDir)
	root := filepath.Join(cacheDir, "prometheus", buildKey)
	err := gobuild.Cached(ctx, root, "promserver", log, func() bool { return usable(bin) }, func() error {
		b := &builder{root: root, run: gobuild.NewRunner("promserver", filepath.Join(root, "build.log"), log, "CGO_ENABLED=0")}
		fmt.Fprintf(log, "promserver: building Prometheus %s (%s@%s) into %s "+
			"(first run only: about 2 min on 2 cores, less with a warm Go build cache)\n",
			releaseVersion, Module, Version, root)
		if err := b.build(ctx, bin); err != nil {
			return err
		}
		if err := version(ctx, bin); err != nil {
			return fmt.Errorf("promserver: the built %s does not run: %w", bin, err)
		}
		fmt.Fprintf(log, "promserver: Prometheus built in %s\n", b.run.Elapsed().Round(time.Second))
		return nil
	})
	if err != nil {
		return "", err
	}
	return bin, nil
}

func usable(path string) bool { return gobuild.Usable(path) }

// kubernetesSD caches hasKubernetesSD's answers by binary path.
var kubernetesSD sync.Map

// kubernetesProbe is a configuration only a Prometheus with Kubernetes service discovery loads.
const kubernetesProbe = "scrape_configs:\n- job_name: probe\n  kubernetes_sd_configs:\n  - role: pod\n    api_server: https://127.0.0.1:1\n"

// hasKubernetesSD reports whether bin loads a configuration with kubernetes_sd_configs: it is run with one on a
// free loopback port until it says it is ready (it has it) or exits (it has not).
func hasKubernetesSD(ctx context.Context, bin string) bool {
	if v, ok := kubernetesSD.Load(bin); ok {
		return v.(bool)
	}
	dir, err := os.MkdirTemp("", "promserver-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(kubernetesProbe), 0o644); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StderrPipe()
	if err != nil {
		return false
	}
	if err := cmd.Start(); err != nil {
		return false
	}
	ok := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Server is ready to receive web requests") {
			ok = true
			break
		}
	}
	_ = cmd.Process.Kill()
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if ctx.Err() == nil {
		kubernetesSD.Store(bin, ok)
	}
	return ok
}

func runs(ctx context.Context, path string) bool {
	if !usable(path) {
		return false
	}
	return version(ctx, path) == nil
}

// version runs `path --version`, which every Prometheus release supports.
func version(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	if !bytes.Contains(out, []byte("prometheus")) {
		return fmt.Errorf("%s --version: does not look like Prometheus: %q", path, firstLine(string(out)))
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

type builder struct {
	root string
	run  *gobuild.Runner
}

// build compiles cmd/prometheus in a scratch module that requires the Prometheus module. `go install
// github.com/prometheus/prometheus/cmd/prometheus@version` is refused because Prometheus's go.mod has exclude
// directives; as a dependency of another module those directives are simply ignored.
func (b *builder) build(ctx context.Context, dst string) error {
	dir := filepath.Join(b.root, "src")
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := copyWithDiscoveries(ctx, filepath.Join(b.root, "prometheus-src")); err != nil {
			return err
		}
		extra := "require " + Module + " " + Version + "\n\nreplace " + Module + " => ../prometheus-src\n"
		if err := gobuild.WriteScratchModule(dir, "canaryline.local/prometheusbuild", []string{mainPackage}, extra); err != nil {
			return err
		}
		if err := b.run.Go(ctx, "resolve "+Module+"@"+Version+" dependencies", dir, "mod", "tidy"); err != nil {
			// Leave no go.sum behind, so that the next attempt starts over rather than building a half-resolved module.
			_ = os.Remove(filepath.Join(dir, "go.sum"))
			return err
		}
	}
	const v = "github.com/prometheus/common/version"
	ldflags := strings.Join([]string{"-s", "-w",
		"-X", v + ".Version=" + releaseVersion,
		"-X", v + ".Revision=" + Version,
		"-X", v + ".Branch=module-proxy",
		"-X", v + ".BuildUser=canaryline",
		"-X", v + ".BuildDate=" + time.Now().UTC().Format("20060102-15:04:05"),
	}, " ")
	// No "builtinassets" tag: the web UI's compiled assets are not part of the module, and only the HTTP API is used.
	return gobuild.InstallFile(dst, func(tmp string) error {
		return b.run.Go(ctx, "build prometheus", dir, "build", "-trimpath", "-ldflags="+ldflags, "-o", tmp, mainPackage)
	})
}

// copyWithDiscoveries copies the Prometheus module (from the module cache, downloading it) into dst, with the
// file, HTTP and Kubernetes service discoveries only: its plugins package (plugins.go, generated upstream from
// plugins.yml) is replaced by one that registers Kubernetes' (file and HTTP are always in, from minimum.go). The
// cloud providers' SDKs the other discoveries link are most of Prometheus's cold build. (go build -overlay cannot
// replace files in the module cache, hence the copy.)
func copyWithDiscoveries(ctx context.Context, dst string) error {
	out, err := gobuild.Output(ctx, os.TempDir(), "mod", "download", "-json", Module+"@"+Version)
	if err != nil {
		return fmt.Errorf("download %s@%s: %w", Module, Version, err)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return fmt.Errorf("download %s@%s: no module directory", Module, Version)
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	err = filepath.WalkDir(info.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(info.Dir, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", info.Dir, err)
	}
	src := "package plugins\n\nimport _ \"" + Module + "/discovery/kubernetes\" // Register kubernetes plugin.\n"
	return os.WriteFile(filepath.Join(dst, "plugins", "plugins.go"), []byte(src), 0o644)
}
