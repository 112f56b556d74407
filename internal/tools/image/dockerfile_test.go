package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerfileMatchesImage checks that the repository's Dockerfile, which
// cannot be built in CI (no container engine), describes the same image as
// NewImage: same user, entrypoint, environment, accounts and file modes.
func TestDockerfileMatchesImage(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "Dockerfile"))
	if err != nil {
		t.Fatalf("read Dockerfile: %v", err)
	}
	df := string(b)
	cfg := imageConfig(Options{})

	var want []string
	want = append(want,
		"FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build",
		"ARG GO_IMAGE=docker.io/library/golang:1.26-bookworm",
		"CGO_ENABLED=0",
		"go build -trimpath -ldflags='-s -w -buildid=' -o /out/canaryline-steps "+StepsPackage,
		"go run "+StepsPackage+" --list",
		`ln -s canaryline-steps "/rootfs/usr/local/bin/$step"`,
		"install -m 0555 /out/canaryline-steps /rootfs"+EntrypointPath,
		"install -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs"+CABundleFile,
		"chmod 1777 /rootfs/tmp",
		"chmod 0775 /rootfs-home/canaryline",
		"chown 65532:0 /rootfs-home/canaryline",
		"\nFROM scratch\n",
		"COPY --from=build --chown=0:0 /rootfs/ /",
		"COPY --from=build --chown=65532:0 --chmod=0775 /rootfs-home/ /home/",
		"\nUSER "+cfg.User+"\n",
		"\nWORKDIR "+cfg.WorkingDir+"\n",
		`ENTRYPOINT ["`+strings.Join(cfg.Entrypoint, `", "`)+`"]`,
		`org.opencontainers.image.licenses="Apache-2.0"`,
		`org.opencontainers.image.title="`+title+`"`,
		`org.opencontainers.image.description="`+description+`"`,
	)
	want = append(want, cfg.Env...)
	for _, line := range strings.Split(strings.TrimSpace(passwd+group), "\n") {
		want = append(want, "'"+line+"'")
	}
	for _, s := range want {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(df, s) {
				t.Errorf("Dockerfile does not contain %q", s)
			}
		})
	}
	for _, label := range []string{LabelSource, LabelRevision, LabelVersion} {
		t.Run(label, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(df, label+"=") {
				t.Errorf("Dockerfile does not set label %s", label)
			}
		})
	}
}

func TestDockerignoreKeepsModule(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", ".dockerignore"))
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch line {
		case "*", "**", "go.mod", "go.sum", "cmd", "cmd/", "internal", "internal/", "*.go", "**/*.go":
			t.Errorf(".dockerignore excludes %q, which the image build needs", line)
		}
	}
}
