package devcluster

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/tools/image"
)

// TestCheckNodeBuildDeps: a missing C compiler or missing libseccomp headers is an error naming the Debian package
// and `make node-deps`.
func TestCheckNodeBuildDeps(t *testing.T) {
	empty := t.TempDir()
	t.Run("no compiler", func(t *testing.T) {
		t.Setenv("PATH", empty)
		t.Setenv("CC", "")
		err := CheckNodeBuildDeps(t.Context())
		if !errors.Is(err, ErrNodeBuildDeps) || !strings.Contains(err.Error(), "gcc") || !strings.Contains(err.Error(), "make node-deps") {
			t.Errorf("without gcc: %v; want ErrNodeBuildDeps naming gcc and make node-deps", err)
		}
	})
	t.Run("no libseccomp", func(t *testing.T) {
		for _, tool := range []string{"gcc", "pkg-config"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed", tool)
			}
		}
		t.Setenv("CC", "")
		t.Setenv("PKG_CONFIG_LIBDIR", empty) // pkg-config searches only here
		t.Setenv("PKG_CONFIG_PATH", "")
		err := CheckNodeBuildDeps(t.Context())
		if !errors.Is(err, ErrNodeBuildDeps) || !strings.Contains(err.Error(), "libseccomp-dev") || !strings.Contains(err.Error(), "make node-deps") {
			t.Errorf("without libseccomp: %v; want ErrNodeBuildDeps naming libseccomp-dev and make node-deps", err)
		}
	})
}

// TestNodeBinariesRun builds (once; cached in the user cache directory afterwards) the real node's binaries and
// runs each one's version command. Cold it takes about 8 minutes on 2 cores: run it with -timeout 30m.
func TestNodeBinariesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kubelet, containerd, runc and CNI plugins from the Go module proxy")
	}
	cache, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	v := DefaultNodeVersions
	bins, err := EnsureNodeBinaries(t.Context(), cache, v, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cni := func(name string) string { return filepath.Join(bins.CNIDir, name) }
	for _, tt := range []struct {
		path   string
		args   []string
		want   []string
		static bool
	}{
		{bins.Path("kubelet"), []string{"--version"}, []string{"Kubernetes " + v.Kubernetes}, false},
		{bins.Path("containerd"), []string{"--version"}, []string{"containerd " + containerdModule + " " + v.Containerd}, true},
		{bins.Path("containerd-shim-runc-v2"), []string{"-v"}, []string{v.Containerd}, true},
		{bins.Path("ctr"), []string{"--version"}, []string{"ctr " + containerdModule + " " + v.Containerd}, true},
		{bins.Path("runc"), []string{"--version"}, []string{"runc version " + strings.TrimPrefix(v.Runc, "v"), "libseccomp: "}, false},
		{cni("bridge"), nil, []string{"CNI bridge plugin " + v.CNI}, true},
		{cni("host-local"), nil, []string{"CNI host-local plugin " + v.CNI}, true},
		{cni("loopback"), nil, []string{"CNI loopback plugin " + v.CNI}, true},
	} {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, tt.path, tt.args...)
			cmd.Env = append(os.Environ(), "CNI_COMMAND=") // a CNI plugin without a command prints its version
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", tt.path, strings.Join(tt.args, " "), err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s %s printed %q; want %q in it", tt.path, strings.Join(tt.args, " "), out, w)
				}
			}
			if err := image.CheckBinary(tt.path, "linux/amd64"); tt.static && err != nil {
				t.Errorf("want a static binary: %v", err)
			}
		})
	}
}
