package plugin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Platform is one OS and architecture the plugin is built for.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// bin is the plugin's file name on p.
func (p Platform) bin() string {
	if p.OS == "windows" {
		return "kubectl-canaryline.exe"
	}
	return "kubectl-canaryline"
}

// Platforms are those a release builds: where people run kubectl and oc.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

// Release is a release build of the plugin.
type Release struct {
	// Root is the repository; Dir where the archives and the manifest go.
	Root, Dir string
	// Version is the release's version ("v0.1.0"); BaseURL where its archives are published.
	Version, BaseURL string
	Platforms        []Platform
	Log              io.Writer
}

// Build builds the plugin for each platform into one reproducible archive (the same tree gives the same bytes),
// and writes the Krew manifest canaryline.yaml naming each archive under BaseURL with its sha256. It returns the
// manifest's path.
func (r Release) Build(ctx context.Context) (string, error) {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return "", err
	}
	var platforms []map[string]any
	for _, p := range r.Platforms {
		name, sum, err := r.archive(ctx, p)
		if err != nil {
			return "", fmt.Errorf("plugin for %s: %w", p, err)
		}
		fmt.Fprintf(r.Log, "plugin: %s sha256 %s\n", name, sum)
		platforms = append(platforms, map[string]any{
			"selector": map[string]any{"matchLabels": map[string]string{"os": p.OS, "arch": p.Arch}},
			"uri":      strings.TrimRight(r.BaseURL, "/") + "/" + name, "sha256": sum, "bin": p.bin(),
		})
	}
	data, err := yaml.Marshal(manifest(r.Version, platforms))
	if err != nil {
		return "", err
	}
	path := filepath.Join(r.Dir, "canaryline.yaml")
	return path, os.WriteFile(path, data, 0o644)
}

// manifest is the Krew plugin manifest (krew.googlecontainertools.github.com/v1alpha2 Plugin).
func manifest(version string, platforms []map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "krew.googlecontainertools.github.com/v1alpha2", "kind": "Plugin",
		"metadata": map[string]any{"name": "canaryline"},
		"spec": map[string]any{
			"version": version, "homepage": "https://github.com/canaryline/canaryline",
			"shortDescription": "Approve, reject, abort and inspect canary releases",
			"description": "Acts on the canary releases that canaryline's Tekton Pipelines run: status shows an " +
				"application's release (images, weight, lock, last decision); approve and reject answer a release " +
				"waiting at its approval gate; abort rolls the release in progress back now.",
			"caveats":   "Approving needs update on the application's release record (the Lease canaryline-APP).",
			"platforms": platforms,
		},
	}
}

// archive builds the plugin for p and packs it: NAME_VERSION_OS_ARCH.tar.gz, with its sha256.
func (r Release) archive(ctx context.Context, p Platform) (string, string, error) {
	tmp, err := os.MkdirTemp("", "canaryline-plugin-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, p.bin())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin, "./cmd/kubectl-canaryline")
	cmd.Dir, cmd.Stderr = r.Root, r.Log
	cmd.Env = append(os.Environ(), "GOOS="+p.OS, "GOARCH="+p.Arch, "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("go build: %w", err)
	}
	data, err := tarGz(bin)
	if err != nil {
		return "", "", err
	}
	name := fmt.Sprintf("kubectl-canaryline_%s_%s_%s.tar.gz", r.Version, p.OS, p.Arch)
	sum := sha256.Sum256(data)
	return name, hex.EncodeToString(sum[:]), os.WriteFile(filepath.Join(r.Dir, name), data, 0o644)
}

// tarGz packs the file at path alone, with no time, owner or name that varies from one build to the next.
func tarGz(path string) ([]byte, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: filepath.Base(path), Mode: 0o755, Size: int64(len(body)), ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
