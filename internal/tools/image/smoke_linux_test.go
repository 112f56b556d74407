//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// TestImageRunsAsNonRoot unpacks the built image into a directory and runs
// a step link in it under chroot, the way a container runtime would, as the
// image's user and as an OpenShift-style arbitrary UID with gid 0. It needs
// root for chroot and for the layer's file owners.
func TestImageRunsAsNonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chroot and file ownership need root")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the fixture binary is linux/amd64")
	}
	opts := buildOpts(t)
	opts.LayoutDir, opts.TarballPath = "", ""
	img, err := NewImage(opts)
	if err != nil {
		t.Fatalf("NewImage: %v", err)
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // a runtime's rootfs is world-readable
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := unpack(rc, root); err != nil {
		t.Fatalf("unpack layer: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		uid  uint32
	}{
		{"image user", 65532},
		{"arbitrary openshift uid", 1000680000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), BinDir+"/shift-canary")
			cmd.Env = cfg.Config.Env
			cmd.Dir = cfg.Config.WorkingDir
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Chroot:     root,
				Credential: &syscall.Credential{Uid: tt.uid, Gid: 0},
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("run shift-canary in the image: %v\n%s", err, out)
			}
			want := fmt.Sprintf("argv0=shift-canary uid=%d gid=0\nok\n", tt.uid)
			if string(out) != want {
				t.Fatalf("output = %q, want %q", out, want)
			}
		})
	}
}

// unpack extracts a layer tar written by writeTar into dir, keeping modes
// and owners.
func unpack(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		mode := hdr.FileInfo().Mode()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, tr); err != nil {
				return err
			}
			if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
			if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
				return err
			}
			continue
		default:
			return fmt.Errorf("unexpected tar entry type %q for %s", hdr.Typeflag, hdr.Name)
		}
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if err := os.Chmod(p, mode.Perm()|mode&(os.ModeSticky|os.ModeSetuid|os.ModeSetgid)); err != nil {
			return err
		}
	}
}
