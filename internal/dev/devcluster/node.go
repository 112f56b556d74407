package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The real node: its name, the label and taint that keep the KWOK-based tests off it (pods opt in with
// RealNodeSelector and RealNodeToleration), and where its containerd listens.
const (
	RealNodeName  = "canaryline-node"
	RealNodeLabel = "canaryline.dev/real-node"
	// NodeRegistryPort is where a registry at the node's address (RealNode.RegistryAddr) is pulled from over HTTP.
	NodeRegistryPort = 5000
)

// RegistryAddr is where the node pulls images over plain HTTP: a registry listening there inside the node's
// namespace (RealNode.Listen) serves it.
func (n *RealNode) RegistryAddr() string {
	return net.JoinHostPort(nodeIP.String(), strconv.Itoa(NodeRegistryPort))
}

// RealNodeSelector and RealNodeToleration put a pod on the real node.
var (
	RealNodeSelector   = map[string]string{RealNodeLabel: "true"}
	RealNodeToleration = corev1.Toleration{Key: RealNodeLabel, Operator: corev1.TolerationOpEqual, Value: "true",
		Effect: corev1.TaintEffectNoSchedule}
)

// RealNode is a kubelet, containerd, runc and CNI node beside the KWOK nodes. It runs in a network namespace of
// its own (no route out of the machine; the apiserver reaches it through egressProxy, its pods reach Services
// through serviceProxy) and in a mount namespace of its own (its directories bound over the host paths kubelet and
// containerd hard-code); everything it starts is in a cgroup subtree of its own. Everything it makes is recorded,
// so that a crash is cleaned up by the next start.
type RealNode struct {
	dir      string
	ns       *netNS
	rec      NodeRecord
	init     *process
	egress   *egressProxy
	api      *forwarder
	svc      *serviceProxy
	dns      *nodeDNS
	bins     NodeBinaries
	images   NodeImages
	socket   string
	pinned   map[string]string // imported image name -> repository@digest
	registry *http.Server      // the node's registry (OpenShift's internal registry's stand-in)
	log      io.Writer
	stopped  bool
	times    NodeStartTimes
}

// NodeStartTimes say how long the node took to start, each from the start of its supervisor, which starts
// containerd at once: containerd's socket there, the images imported, the Node Ready.
type NodeStartTimes struct {
	Containerd, Images, Ready time.Duration
}

// NodeRecord is what a real node made, written before it is made: the next start of any cluster removes what a
// crashed one left (never anything found by name patterns).
type NodeRecord struct {
	Owner      int      `json:"owner"`      // the pid of the process that started the node
	OwnerStart string   `json:"ownerStart"` // its start time (field 22 of /proc/PID/stat), to tell a reused pid
	NetNS      string   `json:"netns"`
	Cgroups    []string `json:"cgroups"` // the subtree roots, one per cgroup hierarchy
	Dir        string   `json:"dir"`
	path       string
}

// CheckRealNode says what this machine lacks to run a real node, naming the requirement ("" when nothing).
func CheckRealNode() error {
	if os.Geteuid() != 0 {
		return errors.New("the real node needs root (kubelet, containerd and runc mount, create namespaces and cgroups): run as root, or without the real node")
	}
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(data), "overlay") {
		return errors.New("the real node needs the kernel's overlay filesystem (containerd's overlayfs snapshotter): modprobe overlay, or run without the real node")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return errors.New("the real node needs network namespaces (CONFIG_NET_NS)")
	}
	if len(cgroupHierarchies()) == 0 {
		return errors.New("the real node needs cgroups mounted at /sys/fs/cgroup (v1 hierarchies or v2)")
	}
	return nil
}

// cgroupHierarchies are the cgroup directories to make the node's subtree in: every v1 controller hierarchy, or
// the v2 root.
func cgroupHierarchies() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if e.Name() == "unified" || e.Type()&os.ModeSymlink != 0 {
			continue // cgroup v2's hierarchy beside v1, and links such as cpu -> cpu,cpuacct
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// nodeRecordsDir holds the records of running real nodes.
func nodeRecordsDir(cacheDir string) string { return filepath.Join(cacheDir, "node", "running") }

// startRealNode prepares what the apiserver needs before it starts (the namespace, the egress proxy) and returns
// the node; run starts it once the apiserver is up.
func startRealNode(ctx context.Context, cacheDir, repoRoot, runDir string, log io.Writer) (n *RealNode, err error) {
	if err := CheckRealNode(); err != nil {
		return nil, err
	}
	bins, err := EnsureNodeBinaries(ctx, cacheDir, DefaultNodeVersions, log)
	if err != nil {
		return nil, err
	}
	images, err := EnsureNodeImages(ctx, cacheDir, repoRoot, log)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	n = &RealNode{dir: filepath.Join(runDir, "node"), bins: bins, images: images, log: log}
	n.socket = filepath.Join(n.dir, "containerd.sock")
	n.rec = NodeRecord{Owner: os.Getpid(), OwnerStart: processStart(os.Getpid()), NetNS: filepath.Join(n.dir, "netns"), Dir: n.dir,
		path: filepath.Join(nodeRecordsDir(cacheDir), "canaryline-"+hex.EncodeToString(id)+".json")}
	for _, h := range cgroupHierarchies() {
		n.rec.Cgroups = append(n.rec.Cgroups, filepath.Join(h, "canaryline-"+hex.EncodeToString(id)))
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return nil, err
	}
	if err := n.writeRecord(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	if n.ns, err = createNetNS(n.rec.NetNS); err != nil {
		return n, err
	}
	if err := setupNodeNet(n.ns); err != nil {
		return n, err
	}
	if n.egress, err = startEgressProxy(filepath.Join(n.dir, "egress.sock"), n.ns); err != nil {
		return n, err
	}
	return n, nil
}

// apiserverFlags are what kube-apiserver needs for a real node: the Node authorizer and NodeRestriction, a client
// certificate for kubelets (no anonymous kubelet), kubelets reached by their InternalIP through the egress proxy.
func (n *RealNode) apiserverFlags(p *pki) ([]string, error) {
	cert, key, err := p.signClient("kubelet-client", "kube-apiserver-kubelet-client", "system:masters")
	if err != nil {
		return nil, err
	}
	egress := filepath.Join(n.dir, "egress.yaml")
	if err := os.WriteFile(egress, []byte(fmt.Sprintf(egressConfig, filepath.Join(n.dir, "egress.sock"))), 0o644); err != nil {
		return nil, err
	}
	return []string{"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--kubelet-client-certificate=" + cert, "--kubelet-client-key=" + key,
		"--kubelet-preferred-address-types=InternalIP", "--egress-selector-config-file=" + egress}, nil
}

// run starts containerd and kubelet and waits until the node is Ready, its images imported.
func (n *RealNode) run(ctx context.Context, c *Cluster, p *pki, shimAddr, apiAddr string) error {
	t0 := time.Now()
	l, err := n.ns.listen("tcp", "127.0.0.1:6443")
	if err != nil {
		return fmt.Errorf("listen for the apiserver in the node's namespace: %w", err)
	}
	n.api = forward(l, func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", apiAddr) })
	if err := n.makeCgroups(); err != nil {
		return err
	}
	cfg, err := n.writeConfigs(p)
	if err != nil {
		return err
	}
	started := time.Now()
	if n.init, err = c.startInNode(n, cfg); err != nil {
		return err
	}
	if err := waitFor(ctx, "containerd", 60*time.Second, n.init, fileExists(n.socket)); err != nil {
		return err
	}
	n.times.Containerd = time.Since(started)
	if err := n.importImages(ctx); err != nil {
		return err
	}
	n.times.Images = time.Since(started)
	kube, err := kubernetes.NewForConfig(c.restConfig(c.APIServerURL))
	if err != nil {
		return err
	}
	if n.svc, err = startServiceProxy(ctx, kube, n.ns, shimAddr); err != nil {
		return err
	}
	if n.dns, err = startNodeDNS(n.ns, n.svc.service); err != nil {
		return err
	}
	if err := n.startNodeRegistry(); err != nil {
		return err
	}
	if err := waitFor(ctx, "the real node Ready", 90*time.Second, n.init, func(ctx context.Context) bool {
		node, err := kube.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		return err == nil && nodeReady(node)
	}); err != nil {
		return err
	}
	n.times.Ready = time.Since(started)
	fmt.Fprintf(n.log, "devcluster: real node %s Ready in %s (kubelet and containerd logs in %s)\n", RealNodeName,
		time.Since(t0).Round(time.Millisecond), filepath.Join(n.dir, "logs"))
	return nil
}

func fileExists(path string) func(context.Context) bool {
	return func(context.Context) bool { _, err := os.Stat(path); return err == nil }
}

// setupNodeNet brings up the node's loopback interface with the node's address on it. The Service proxy adds the
// ClusterIPs it answers there too (the kernel here may have no dummy interfaces; any local address will do).
func setupNodeNet(ns *netNS) error {
	h, err := netns.GetFromPath(ns.path)
	if err != nil {
		return err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return err
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return err
	}
	if err := nl.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: nodeIP, Mask: net.CIDRMask(32, 32)}}); err != nil {
		return fmt.Errorf("address the node: %w", err)
	}
	return nil
}

// makeCgroups makes the node's cgroup subtree in every hierarchy, and its "node" cgroup, where the supervisor,
// containerd, kubelet and the shims run; kubelet puts the pods under the subtree's kubepods.
func (n *RealNode) makeCgroups() error {
	for _, cg := range n.rec.Cgroups {
		for _, dir := range []string{cg, filepath.Join(cg, "node")} {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			inheritCpuset(dir)
		}
		if filepath.Dir(cg) == "/sys/fs/cgroup" && len(n.rec.Cgroups) == 1 {
			enableControllers(cg)
		}
	}
	return nil
}

// inheritCpuset gives a new cgroup v1 cpuset its parent's CPUs and memory nodes: an empty cpuset takes no process.
func inheritCpuset(dir string) {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, f), v, 0o644)
		}
	}
}

// enableControllers delegates cgroup v2 controllers to a subtree (v2 only).
func enableControllers(cg string) {
	data, err := os.ReadFile(filepath.Join(filepath.Dir(cg), "cgroup.controllers"))
	if err != nil {
		return
	}
	var enable []string
	for _, c := range strings.Fields(string(data)) {
		enable = append(enable, "+"+c)
	}
	_ = os.WriteFile(filepath.Join(cg, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0o644)
}

// cgroupRoot is the subtree root as kubelet names it (the same path in every hierarchy).
func (n *RealNode) cgroupRoot() string { return "/" + filepath.Base(n.rec.Cgroups[0]) }

func (n *RealNode) writeRecord() error {
	if err := os.MkdirAll(filepath.Dir(n.rec.path), 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(n.rec, "", "  ")
	return os.WriteFile(n.rec.path, data, 0o644)
}

// importImages puts the node's images into containerd (namespace k8s.io), as `ctr images import` does, and names
// each also by its digest (repository@sha256:...), so that pods may pin them as releases do.
func (n *RealNode) importImages(ctx context.Context) error {
	n.pinned = map[string]string{}
	ctr := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, n.bins.Path("ctr"), append([]string{"--address", n.socket, "-n", "k8s.io"}, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
		}
		return []byte(out.String()), nil
	}
	for _, img := range n.images.All() {
		if _, err := ctr("images", "import", img.Tarball); err != nil {
			return fmt.Errorf("import %s into the real node: %w", img.Name, err)
		}
		out, err := ctr("images", "ls", "name=="+img.Name)
		if err != nil {
			return err
		}
		digest := ""
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "sha256:") {
				digest = f
				break
			}
		}
		if digest == "" {
			return fmt.Errorf("the real node has no digest for %s: %s", img.Name, out)
		}
		pinned := repositoryOf(img.Name) + "@" + digest
		if _, err := ctr("images", "tag", "--force", img.Name, pinned); err != nil {
			return err
		}
		n.pinned[img.Name] = pinned
	}
	return nil
}

// repositoryOf is an image reference without its tag.
func repositoryOf(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// Pinned is image name (as imported) pinned by the digest the node knows it by: what a release's IMAGE is.
func (n *RealNode) Pinned(name string) string { return n.pinned[name] }

// Listen opens a listener inside the real node's network namespace (for example a registry the node pulls from,
// at its node address).
func (n *RealNode) Listen(network, addr string) (net.Listener, error) {
	return n.ns.listen(network, addr)
}

// Dial connects from inside the real node's network namespace (to a pod's address, say).
func (n *RealNode) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.ns.dial(ctx, network, addr)
}

// stop stops the node and removes everything it made: processes (by the cgroup subtree), cgroups, the network
// namespace, the record.
func (n *RealNode) stop() {
	if n == nil || n.stopped {
		return
	}
	n.stopped = true
	if n.dns != nil {
		n.dns.close()
	}
	if n.svc != nil {
		n.svc.close()
	}
	if n.init != nil {
		n.init.stop(15 * time.Second)
	}
	if n.api != nil {
		n.api.close()
	}
	if n.registry != nil {
		_ = n.registry.Close()
	}
	if n.egress != nil {
		n.egress.close()
	}
	if err := removeNode(n.rec); err != nil {
		fmt.Fprintf(n.log, "devcluster: removing the real node: %v\n", err)
	}
}

// removeNode kills every process in the node's cgroup subtree, removes the subtree, the network namespace and
// the record.
func removeNode(rec NodeRecord) error {
	var errs []error
	for _, cg := range rec.Cgroups {
		if err := removeCgroupTree(cg); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.NetNS != "" {
		if err := (&netNS{path: rec.NetNS}).remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Dir != "" && len(errs) == 0 {
		if err := os.RemoveAll(rec.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.path != "" && len(errs) == 0 {
		_ = os.Remove(rec.path)
	}
	return errors.Join(errs...)
}

// removeCgroupTree kills the processes of a cgroup subtree and removes its cgroups, the deepest first.
func removeCgroupTree(root string) error {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for _, d := range dirs {
			killCgroup(d)
		}
		left := 0
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: %d cgroups could not be removed", root, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func killCgroup(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cleanStaleNodes removes what real nodes of processes that are gone left behind (a SIGKILL, a crash).
func cleanStaleNodes(cacheDir string, log io.Writer) {
	entries, err := os.ReadDir(nodeRecordsDir(cacheDir))
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(nodeRecordsDir(cacheDir), e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var rec NodeRecord
		if json.Unmarshal(data, &rec) != nil {
			continue
		}
		rec.path = path
		if rec.Owner > 0 && processStart(rec.Owner) == rec.OwnerStart && rec.OwnerStart != "" {
			continue // its owner still runs
		}
		fmt.Fprintf(log, "devcluster: removing what a real node of process %d left (it is gone): %s\n", rec.Owner, strings.Join(append(rec.Cgroups, rec.NetNS), ", "))
		if err := removeNode(rec); err != nil {
			fmt.Fprintf(log, "devcluster: %v\n", err)
		}
	}
}

// processStart is a process's start time in clock ticks since boot ("" when it does not run).
func processStart(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19] // field 22 of stat; the fields after the name start at field 3
}

// Node is the cluster's real node, nil when it runs none.
func (c *Cluster) Node() *RealNode { return c.node }

// StartTimes are how long the node took to start (see NodeStartTimes).
func (n *RealNode) StartTimes() NodeStartTimes { return n.times }

// Record is what the node made (its cgroup subtrees, its network namespace, its directory).
func (n *RealNode) Record() NodeRecord {
	r := n.rec
	r.Cgroups = slices.Clone(n.rec.Cgroups)
	return r
}

// Images are the images imported into the node.
func (n *RealNode) Images() NodeImages { return n.images }

// RunningNodes are the records of the real nodes started with cacheDir (of running processes, or of crashed ones
// not yet cleaned up).
func RunningNodes(cacheDir string) []NodeRecord {
	entries, _ := os.ReadDir(nodeRecordsDir(cacheDir))
	var out []NodeRecord
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(nodeRecordsDir(cacheDir), e.Name()))
		var rec NodeRecord
		if err == nil && json.Unmarshal(data, &rec) == nil {
			rec.path = filepath.Join(nodeRecordsDir(cacheDir), e.Name())
			out = append(out, rec)
		}
	}
	return out
}

// IP is the node's address: programs listening there in its namespace (RealNode.Listen) are reachable from its
// pods.
func (n *RealNode) IP() string { return nodeIP.String() }
