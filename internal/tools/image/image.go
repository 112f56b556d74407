// Package image builds the canaryline step image without a container engine.
//
// The image is a single layer on top of nothing (like FROM scratch) holding
// the static multi-call binary cmd/canaryline-steps, one symlink per step
// name, a CA bundle, minimal /etc/passwd and /etc/group files, /tmp and the
// home directory of the non-root user canaryline (uid 65532, gid 0, so
// that OpenShift's arbitrary UIDs, which always run with gid 0, can write to
// it). The layer is built in memory and is reproducible: fixed modification
// times, sorted entries, numeric owners only.
//
// The Dockerfile at the repository root builds the same file system for
// users with a container engine; TestDockerfileMatchesImage keeps the two
// in step.
package image

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/steps"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identities inside the image.
const (
	BinDir         = "/usr/local/bin"
	EntrypointPath = BinDir + "/" + steps.MultiCallName
	CABundleFile   = "/etc/ssl/certs/ca-certificates.crt"
	HomeDir        = "/home/canaryline"
	UserName       = "canaryline"
	UID            = 65532
	GID            = 0
	// RunAsUser is the config's User: numeric so that Kubernetes'
	// runAsNonRoot check can verify it without reading /etc/passwd, and
	// without a group so that OpenShift's restricted SCCs may substitute an
	// arbitrary UID (which always comes with gid 0).
	RunAsUser = "65532"
	PathEnv   = "/usr/local/bin:/usr/bin:/bin"
)

// Defaults for Options.
const (
	DefaultPlatform     = "linux/amd64"
	DefaultCABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	DefaultRepository   = "canaryline-steps"
	// SizeBudget is the most uncompressed bytes the step image may hold
	// (32 MB, decimal).
	SizeBudget int64 = 32_000_000
)

// OCI annotation and label keys.
const (
	AnnotationRefName = "org.opencontainers.image.ref.name"
	LabelTitle        = "org.opencontainers.image.title"
	LabelDescription  = "org.opencontainers.image.description"
	LabelSource       = "org.opencontainers.image.source"
	LabelRevision     = "org.opencontainers.image.revision"
	LabelVersion      = "org.opencontainers.image.version"
	LabelLicenses     = "org.opencontainers.image.licenses"
)

const (
	title       = "canaryline-steps"
	description = "canaryline Tekton step commands (start-build, wait-build, shift-canary, verify-health, promote-or-rollback) in one multi-call binary"
	licenses    = "Apache-2.0"
)

// ErrOverBudget is returned (wrapped) by Build when the image is larger than
// the allowed uncompressed size.
var ErrOverBudget = errors.New("image exceeds its uncompressed size budget")

// Options are the inputs of Build and NewImage.
type Options struct {
	// BinaryPath is the static linux binary built from ./cmd/canaryline-steps.
	// When empty, Build compiles one from RepoRoot.
	BinaryPath string
	// RepoRoot is the module root Build compiles the binary from when
	// BinaryPath is empty.
	RepoRoot string
	// Platform is os/arch[/variant]; only linux is supported. Default
	// DefaultPlatform.
	Platform string
	// CABundlePath is the host CA bundle copied to CABundleFile. Default
	// DefaultCABundlePath.
	CABundlePath string
	// Ref is the image reference recorded as AnnotationRefName in the OCI
	// layout and as the repository tag of the docker tarball. It must carry
	// a tag, not a digest. Default DefaultRepository:Version, or
	// DefaultRepository:dev without a Version.
	Ref string
	// Version, Source and Revision become the OCI version, source and
	// revision labels; empty ones are left out.
	Version, Source, Revision string
	// Created is the config's creation time and every file's modification
	// time; the zero value means the Unix epoch. See SourceDateEpoch.
	Created time.Time
	// LayoutDir, when set, is where Build writes the OCI image layout. The
	// directory must be absent, empty or an earlier OCI layout, which is
	// replaced.
	LayoutDir string
	// TarballPath, when set, is where Build writes a tarball that
	// "docker load" and "podman load" accept.
	TarballPath string
	// MaxUncompressedBytes is the size budget Build enforces: 0 means
	// SizeBudget and a negative value disables the check.
	MaxUncompressedBytes int64
}

// withDefaults fills in defaults and validates the fields NewImage uses.
func (o Options) withDefaults() (Options, *v1.Platform, error) {
	if o.Platform == "" {
		o.Platform = DefaultPlatform
	}
	p, err := v1.ParsePlatform(o.Platform)
	if err != nil {
		return o, nil, fmt.Errorf("parse platform %q: %w", o.Platform, err)
	}
	if p.OS != "linux" || p.Architecture == "" {
		return o, nil, fmt.Errorf("parse platform %q: want linux/ARCH[/VARIANT]", o.Platform)
	}
	if o.CABundlePath == "" {
		o.CABundlePath = DefaultCABundlePath
	}
	if o.Ref == "" {
		tag := o.Version
		if tag == "" {
			tag = "dev"
		}
		o.Ref = DefaultRepository + ":" + tag
	}
	if _, err := parseTag(o.Ref); err != nil {
		return o, nil, err
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	o.Created = o.Created.UTC().Truncate(time.Second)
	if o.Created.Before(time.Unix(0, 0)) {
		return o, nil, fmt.Errorf("check creation time %s: before the Unix epoch", o.Created)
	}
	return o, p, nil
}

// NewImage assembles the step image from opts.BinaryPath and
// opts.CABundlePath. It does not check that the binary is a static linux
// executable for the platform; Build does, with CheckBinary.
func NewImage(opts Options) (v1.Image, error) {
	opts, platform, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.BinaryPath == "" {
		return nil, errors.New("build image: no binary path given")
	}
	bin, err := os.ReadFile(opts.BinaryPath)
	if err != nil {
		return nil, fmt.Errorf("read step binary: %w", err)
	}
	ca, err := os.ReadFile(opts.CABundlePath)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("read CA bundle %s: no PEM certificate in it", opts.CABundlePath)
	}
	layer, err := newLayer(rootFS(bin, ca, steps.Names()), opts.Created)
	if err != nil {
		return nil, err
	}

	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: opts.Created},
			CreatedBy: "canaryline image: " + steps.MultiCallName + ", step links, CA bundle, passwd/group, /tmp, " + HomeDir,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append step layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: opts.Created}
	cfg.OS = platform.OS
	cfg.Architecture = platform.Architecture
	cfg.Variant = platform.Variant
	cfg.Config = imageConfig(opts)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set image config: %w", err)
	}
	return img, nil
}

// imageConfig is the runtime configuration of the step image.
func imageConfig(opts Options) v1.Config {
	labels := map[string]string{
		LabelTitle:       title,
		LabelDescription: description,
		LabelLicenses:    licenses,
	}
	for k, v := range map[string]string{LabelSource: opts.Source, LabelRevision: opts.Revision, LabelVersion: opts.Version} {
		if v != "" {
			labels[k] = v
		}
	}
	return v1.Config{
		User:       RunAsUser,
		Entrypoint: []string{EntrypointPath},
		Env: []string{
			"PATH=" + PathEnv,
			"HOME=" + HomeDir,
			"SSL_CERT_FILE=" + CABundleFile,
		},
		WorkingDir: HomeDir,
		Labels:     labels,
	}
}
