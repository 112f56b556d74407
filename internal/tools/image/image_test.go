package image

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestLayerContents(t *testing.T) {
	t.Parallel()
	bin := []byte("#!fake multi-call binary\x00\x01\x02")
	ca := testCABundle(t)
	created := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	img, err := NewImage(Options{
		BinaryPath:   writeFile(t, "canaryline-steps", bin),
		CABundlePath: writeFile(t, "ca.crt", ca),
		Created:      created.Add(900 * time.Millisecond), // truncated to seconds
	})
	if err != nil {
		t.Fatalf("NewImage: %v", err)
	}
	entries, files := readLayer(t, img)

	dir := func(name string, mode fs.FileMode, uid int) tarEntry {
		return tarEntry{Name: name, Type: tar.TypeDir, Mode: fs.ModeDir | mode, UID: uid, GID: 0, ModTime: created}
	}
	reg := func(name string, mode fs.FileMode, size int) tarEntry {
		return tarEntry{Name: name, Type: tar.TypeReg, Mode: mode, Size: int64(size), ModTime: created}
	}
	link := func(name string) tarEntry {
		return tarEntry{Name: name, Type: tar.TypeSymlink, Mode: fs.ModeSymlink | 0o777, Linkname: "canaryline-steps", ModTime: created}
	}
	want := []tarEntry{
		dir("etc/", 0o755, 0),
		reg("etc/group", 0o644, len(group)),
		reg("etc/passwd", 0o644, len(passwd)),
		dir("etc/ssl/", 0o755, 0),
		dir("etc/ssl/certs/", 0o755, 0),
		reg("etc/ssl/certs/ca-certificates.crt", 0o644, len(ca)),
		dir("home/", 0o755, 0),
		dir("home/canaryline/", 0o775, 65532),
		dir("tmp/", fs.ModeSticky|0o777, 0),
		dir("usr/", 0o755, 0),
		dir("usr/local/", 0o755, 0),
		dir("usr/local/bin/", 0o755, 0),
		reg("usr/local/bin/canaryline-steps", 0o555, len(bin)),
		link("usr/local/bin/promote-or-rollback"),
		link("usr/local/bin/shift-canary"),
		link("usr/local/bin/start-build"),
		link("usr/local/bin/verify-health"),
		link("usr/local/bin/wait-build"),
	}
	if !slices.Equal(entries, want) {
		t.Errorf("layer entries differ\n got:")
		for _, e := range entries {
			t.Errorf("  %+v", e)
		}
		t.Errorf(" want:")
		for _, e := range want {
			t.Errorf("  %+v", e)
		}
	}

	contents := []struct {
		name string
		want []byte
	}{
		{"usr/local/bin/canaryline-steps", bin},
		{"etc/ssl/certs/ca-certificates.crt", ca},
		{"etc/passwd", []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\ncanaryline:x:65532:0:canaryline:/home/canaryline:/sbin/nologin\n")},
		{"etc/group", []byte("root:x:0:\nnobody:x:65534:\n")},
	}
	for _, c := range contents {
		if got := files[c.name]; !bytes.Equal(got, c.want) {
			t.Errorf("content of %s = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestImageConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     Options
		wantArch string
		wantVar  string
		wantLbl  map[string]string
	}{
		{
			name:     "defaults",
			wantArch: "amd64",
			wantLbl: map[string]string{
				LabelTitle:       "canaryline-steps",
				LabelDescription: description,
				LabelLicenses:    "Apache-2.0",
			},
		},
		{
			name:     "arm64 with provenance",
			opts:     Options{Platform: "linux/arm64", Version: "v1.2.3", Source: "https://github.com/canaryline/canaryline", Revision: "0123abc"},
			wantArch: "arm64",
			wantLbl: map[string]string{
				LabelTitle:       "canaryline-steps",
				LabelDescription: description,
				LabelLicenses:    "Apache-2.0",
				LabelVersion:     "v1.2.3",
				LabelSource:      "https://github.com/canaryline/canaryline",
				LabelRevision:    "0123abc",
			},
		},
		{
			name:     "arm variant",
			opts:     Options{Platform: "linux/arm/v7"},
			wantArch: "arm",
			wantVar:  "v7",
			wantLbl: map[string]string{
				LabelTitle:       "canaryline-steps",
				LabelDescription: description,
				LabelLicenses:    "Apache-2.0",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			opts.BinaryPath = writeFile(t, "bin", []byte("fake"))
			opts.CABundlePath = writeFile(t, "ca.crt", testCABundle(t))
			img, err := NewImage(opts)
			if err != nil {
				t.Fatalf("NewImage: %v", err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatalf("ConfigFile: %v", err)
			}
			c := cfg.Config
			if c.User != "65532" {
				t.Errorf("User = %q, want numeric non-root %q", c.User, "65532")
			}
			if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/canaryline-steps"}) {
				t.Errorf("Entrypoint = %q", c.Entrypoint)
			}
			if len(c.Cmd) != 0 {
				t.Errorf("Cmd = %q, want none", c.Cmd)
			}
			wantEnv := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/canaryline", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
			if !slices.Equal(c.Env, wantEnv) {
				t.Errorf("Env = %q, want %q", c.Env, wantEnv)
			}
			if c.WorkingDir != "/home/canaryline" {
				t.Errorf("WorkingDir = %q", c.WorkingDir)
			}
			if !maps.Equal(c.Labels, tt.wantLbl) {
				t.Errorf("Labels = %v, want %v", c.Labels, tt.wantLbl)
			}
			if cfg.OS != "linux" || cfg.Architecture != tt.wantArch || cfg.Variant != tt.wantVar {
				t.Errorf("platform = %s/%s/%s, want linux/%s/%s", cfg.OS, cfg.Architecture, cfg.Variant, tt.wantArch, tt.wantVar)
			}
			if !cfg.Created.Equal(time.Unix(0, 0)) {
				t.Errorf("Created = %s, want the Unix epoch", cfg.Created)
			}
			if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 1 || len(cfg.History) != 1 {
				t.Errorf("RootFS = %+v, History = %+v; want one layer and one history entry", cfg.RootFS, cfg.History)
			}

			mt, err := img.MediaType()
			if err != nil || mt != types.OCIManifestSchema1 {
				t.Errorf("manifest media type = %s, %v; want %s", mt, err, types.OCIManifestSchema1)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatalf("Manifest: %v", err)
			}
			if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
				t.Errorf("manifest media types: config %s, layers %+v; want OCI", m.Config.MediaType, m.Layers)
			}
		})
	}
}

func TestNewImageRejectsBadOptions(t *testing.T) {
	t.Parallel()
	bin := writeFile(t, "bin", []byte("fake"))
	ca := writeFile(t, "ca.crt", testCABundle(t))
	notPEM := writeFile(t, "not-a-bundle", []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no binary", Options{CABundlePath: ca}, "no binary path given"},
		{"missing binary", Options{BinaryPath: bin + ".missing", CABundlePath: ca}, "read step binary"},
		{"missing CA bundle", Options{BinaryPath: bin, CABundlePath: ca + ".missing"}, "read CA bundle"},
		{"CA bundle without certificates", Options{BinaryPath: bin, CABundlePath: notPEM}, "no PEM certificate"},
		{"windows platform", Options{BinaryPath: bin, CABundlePath: ca, Platform: "windows/amd64"}, "want linux/ARCH"},
		{"garbage platform", Options{BinaryPath: bin, CABundlePath: ca, Platform: "linux/amd64/v3/x"}, "parse platform"},
		{"digest ref", Options{BinaryPath: bin, CABundlePath: ca, Ref: "example.com/steps@sha256:" + strings.Repeat("a", 64)}, "want a tag, not a digest"},
		{"bad ref", Options{BinaryPath: bin, CABundlePath: ca, Ref: "Example.com/UPPER:tag"}, "parse image reference"},
		{"before epoch", Options{BinaryPath: bin, CABundlePath: ca, Created: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, "before the Unix epoch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewImage(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewImage error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestWriteTarDeterministic(t *testing.T) {
	t.Parallel()
	es := rootFS([]byte("bin"), []byte("ca"), []string{"b-step", "a-step"})
	reversed := slices.Clone(es)
	slices.Reverse(reversed)
	var a, b bytes.Buffer
	if err := writeTar(&a, es, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := writeTar(&b, reversed, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("layer tar depends on the order of its entries")
	}
	dup := append(slices.Clone(es), es[0])
	if err := writeTar(&bytes.Buffer{}, dup, time.Unix(0, 0)); err == nil || !strings.Contains(err.Error(), "duplicate entry") {
		t.Fatalf("writeTar with a duplicate = %v, want a duplicate entry error", err)
	}
}

// TestUncompressedSizeIsTarSize checks that the report's uncompressed size
// is exactly the length of the layer tar the image was built from.
func TestUncompressedSizeIsTarSize(t *testing.T) {
	t.Parallel()
	bin := bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 5000)
	ca := testCABundle(t)
	created := time.Unix(1700000000, 0)
	img, err := NewImage(Options{
		BinaryPath:   writeFile(t, "bin", bin),
		CABundlePath: writeFile(t, "ca.crt", ca),
		Created:      created,
	})
	if err != nil {
		t.Fatalf("NewImage: %v", err)
	}
	var tarBuf bytes.Buffer
	if err := writeTar(&tarBuf, rootFS(bin, ca, []string{"start-build", "wait-build", "shift-canary", "verify-health", "promote-or-rollback"}), created.UTC()); err != nil {
		t.Fatal(err)
	}
	r, err := Size(img)
	if err != nil {
		t.Fatalf("Size: %v", err)
	}
	if r.UncompressedBytes != int64(tarBuf.Len()) {
		t.Errorf("UncompressedBytes = %d, want tar length %d", r.UncompressedBytes, tarBuf.Len())
	}
	if r.BinaryBytes != int64(len(bin)) {
		t.Errorf("BinaryBytes = %d, want %d", r.BinaryBytes, len(bin))
	}
	layers, _ := img.Layers()
	compressed, _ := layers[0].Size()
	if r.CompressedBytes != compressed || r.CompressedBytes >= r.UncompressedBytes {
		t.Errorf("CompressedBytes = %d, want the layer blob size %d (smaller than %d)", r.CompressedBytes, compressed, r.UncompressedBytes)
	}
	d, _ := img.Digest()
	if r.Digest != d || r.Layers != 1 || r.Platform != "linux/amd64" {
		t.Errorf("report = %+v, want digest %s, 1 layer, linux/amd64", r, d)
	}
	if !strings.Contains(r.String(), d.String()) {
		t.Errorf("String() = %q, want it to name the digest", r.String())
	}
}
