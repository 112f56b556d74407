package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

// NodeVersions pins what a real node (kubelet, containerd, runc, CNI plugins) is built from. All of it comes from
// the Go module proxy.
type NodeVersions struct {
	Kubernetes string // k8s.io/kubernetes tag of the kubelet: the control plane's
	Containerd string // github.com/containerd/containerd/v2
	Runc       string // github.com/opencontainers/runc
	CNI        string // github.com/containernetworking/plugins
}

// DefaultNodeVersions are the versions known to build with Go 1.26 from the module proxy.
var DefaultNodeVersions = NodeVersions{Kubernetes: DefaultVersions.Kubernetes, Containerd: "v2.4.2", Runc: "v1.5.3", CNI: "v1.9.1"}

// nodeRecipe is bumped whenever the way the node's binaries are built changes, so old caches are not reused.
const nodeRecipe = "r1"

// Key names the cache entry for these versions.
func (v NodeVersions) Key() string {
	return fmt.Sprintf("k8s-%s_containerd-%s_runc-%s_cni-%s_%s", v.Kubernetes, v.Containerd, v.Runc, v.CNI, nodeRecipe)
}

// The binaries of a real node and its CNI plugins.
var (
	nodeBinaries = []string{"runc", "containerd", "containerd-shim-runc-v2", "ctr", "kubelet"}
	cniPlugins   = []string{"bridge", "host-local", "loopback"}
)

// NodeBinaries are the paths of a built real node.
type NodeBinaries struct {
	Dir    string // kubelet, containerd, containerd-shim-runc-v2, ctr, runc
	CNIDir string // the CNI plugins bridge, host-local, loopback (containerd's CNI bin_dirs)
}

// Path returns the path of one binary of Dir.
func (b NodeBinaries) Path(name string) string { return filepath.Join(b.Dir, name) }

func (b NodeBinaries) complete() bool {
	for _, n := range nodeBinaries {
		if !gobuild.Usable(b.Path(n)) {
			return false
		}
	}
	for _, n := range cniPlugins {
		if !gobuild.Usable(filepath.Join(b.CNIDir, n)) {
			return false
		}
	}
	return true
}

// EnsureNodeBinaries returns the cached binaries of a real node for v, building them first when the cache has
// none: cacheDir/node/<key>/bin, with the CNI plugins in its cni/. Concurrent callers wait for one build. runc
// needs cgo and libseccomp's headers; when they are missing it fails before building anything, naming the Debian
// package (`make node-deps` installs them).
func EnsureNodeBinaries(ctx context.Context, cacheDir string, v NodeVersions, log io.Writer) (NodeBinaries, error) {
	root := filepath.Join(cacheDir, "node", v.Key())
	bins := NodeBinaries{Dir: filepath.Join(root, "bin"), CNIDir: filepath.Join(root, "bin", "cni")}
	if bins.complete() {
		return bins, nil
	}
	if err := CheckNodeBuildDeps(ctx); err != nil {
		return bins, err
	}
	err := gobuild.Cached(ctx, root, "devcluster node", log, bins.complete, func() error {
		b := &nodeBuilder{root: root, v: v, run: gobuild.NewRunner("devcluster node", filepath.Join(root, "build.log"), log)}
		fmt.Fprintf(log, "devcluster node: building kubelet, containerd, runc and CNI plugins %s into %s "+
			"(first run only: about 8 min on 2 cores, less with a warm Go build cache)\n", v.Key(), root)
		if err := b.buildAll(ctx, bins); err != nil {
			return err
		}
		fmt.Fprintf(log, "devcluster node: built in %s\n", b.run.Elapsed().Round(time.Second))
		return nil
	})
	return bins, err
}

// ErrNodeBuildDeps is returned (wrapped) when the machine lacks what runc's cgo build needs.
var ErrNodeBuildDeps = errors.New("the real node's build requirements are missing")

// CheckNodeBuildDeps checks what runc's cgo build with seccomp needs: a C compiler ($CC, else gcc), pkg-config and
// libseccomp's headers, which it finds with pkg-config (Debian's libseccomp-dev).
func CheckNodeBuildDeps(ctx context.Context) error {
	cc := "gcc"
	if f := strings.Fields(os.Getenv("CC")); len(f) > 0 {
		cc = f[0]
	}
	if _, err := exec.LookPath(cc); err != nil {
		return nodeDepsError("runc is built with cgo and needs the C compiler %s (Debian package gcc)", cc)
	}
	pc, err := exec.LookPath("pkg-config")
	if err != nil {
		return nodeDepsError("runc finds libseccomp with pkg-config, which is not installed (Debian package pkg-config)")
	}
	if err := exec.CommandContext(ctx, pc, "--exists", "libseccomp").Run(); err != nil {
		return nodeDepsError("runc is built with seccomp and needs libseccomp's headers, which pkg-config does not find " +
			"(Debian package libseccomp-dev)")
	}
	return nil
}

func nodeDepsError(format string, args ...any) error {
	return fmt.Errorf("%w: %s; install Debian's gcc, pkg-config and libseccomp-dev (`make node-deps` does it as root)",
		ErrNodeBuildDeps, fmt.Sprintf(format, args...))
}

type nodeBuilder struct {
	root string
	v    NodeVersions
	run  *gobuild.Runner
}

// nodeTarget is one binary: its path under bin/, the module it is built in, its package, build tags, linker flags
// and environment.
type nodeTarget struct {
	out, dir, pkg, tags, ldflags string
	env                          []string
}

func (b *nodeBuilder) buildAll(ctx context.Context, bins NodeBinaries) error {
	return gobuild.InstallDir(bins.Dir, func(tmpBin string) error {
		if err := os.MkdirAll(filepath.Join(tmpBin, "cni"), 0o755); err != nil {
			return err
		}
		targets, err := b.targets(ctx)
		if err != nil {
			return err
		}
		for i, t := range targets {
			args := []string{"build", "-ldflags=" + t.ldflags, "-o", filepath.Join(tmpBin, t.out)}
			if t.tags != "" {
				args = append(args, "-tags="+t.tags)
			}
			step := fmt.Sprintf("build %s (%d/%d)", t.out, i+1, len(targets))
			if _, _, err := b.run.Run(ctx, step, t.dir, t.env, append(args, t.pkg)...); err != nil {
				return err
			}
		}
		return nil
	})
}

const (
	containerdModule = "github.com/containerd/containerd/v2"
	runcModule       = "github.com/opencontainers/runc"
	cniModule        = "github.com/containernetworking/plugins"
)

// targets prepares the scratch modules and says how each binary is built. kubelet is built like the control
// plane's binaries (the same go.mod, linker flags and cgo setting), so that it shares their Go build cache.
// containerd and the CNI plugins are static; runc needs cgo for its nsenter and seccomp (containerd always gives
// the pause container the default seccomp profile).
func (b *nodeBuilder) targets(ctx context.Context) ([]nodeTarget, error) {
	src := filepath.Join(b.root, "src")
	runcMod, err := scratchModule(ctx, b.run, filepath.Join(src, "runc"), "runc", runcModule+"@"+b.v.Runc, runcModule)
	if err != nil {
		return nil, err
	}
	cniMod, err := scratchModule(ctx, b.run, filepath.Join(src, "cni"), "cni", cniModule+"@"+b.v.CNI,
		cniModule+"/plugins/main/bridge", cniModule+"/plugins/ipam/host-local", cniModule+"/plugins/main/loopback")
	if err != nil {
		return nil, err
	}
	ctrdMod, err := scratchModule(ctx, b.run, filepath.Join(src, "containerd"), "containerd", containerdModule+"@"+b.v.Containerd,
		containerdModule+"/cmd/containerd", containerdModule+"/cmd/containerd-shim-runc-v2", containerdModule+"/cmd/ctr")
	if err != nil {
		return nil, err
	}
	k8sMod, err := kubernetesModule(ctx, b.run, filepath.Join(src, "kubernetes"), "canaryline.local/nodebuild",
		b.v.Kubernetes, []string{"k8s.io/kubernetes/cmd/kubelet"})
	if err != nil {
		return nil, err
	}
	static := []string{"CGO_ENABLED=0"}
	ctrdTags := "no_btrfs no_devmapper no_zfs urfave_cli_no_docs"
	ctrdLdflags := "-s -w -X " + containerdModule + "/version.Version=" + b.v.Containerd
	cniLdflags := "-s -w -X " + cniModule + "/pkg/utils/buildversion.BuildVersion=" + b.v.CNI
	return []nodeTarget{
		{out: "runc", dir: runcMod, pkg: runcModule, tags: "seccomp urfave_cli_no_docs", ldflags: "-s -w", env: []string{"CGO_ENABLED=1"}},
		{out: "cni/bridge", dir: cniMod, pkg: cniModule + "/plugins/main/bridge", ldflags: cniLdflags, env: static},
		{out: "cni/host-local", dir: cniMod, pkg: cniModule + "/plugins/ipam/host-local", ldflags: cniLdflags, env: static},
		{out: "cni/loopback", dir: cniMod, pkg: cniModule + "/plugins/main/loopback", ldflags: cniLdflags, env: static},
		{out: "containerd", dir: ctrdMod, pkg: containerdModule + "/cmd/containerd", tags: ctrdTags, ldflags: ctrdLdflags, env: static},
		{out: "containerd-shim-runc-v2", dir: ctrdMod, pkg: containerdModule + "/cmd/containerd-shim-runc-v2", tags: ctrdTags, ldflags: ctrdLdflags, env: static},
		{out: "ctr", dir: ctrdMod, pkg: containerdModule + "/cmd/ctr", tags: ctrdTags, ldflags: ctrdLdflags, env: static},
		{out: "kubelet", dir: k8sMod, pkg: "k8s.io/kubernetes/cmd/kubelet", ldflags: kubernetesLdflags(b.v.Kubernetes)},
	}, nil
}
