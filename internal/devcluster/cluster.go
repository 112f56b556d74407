// Package devcluster runs a real Kubernetes control plane on loopback for tests and the demo: etcd,
// kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler and KWOK fake nodes, all built from the Go
// module proxy and cached. In front of kube-apiserver sits a small OpenShift API shim that serves what a CRD
// cannot (BuildConfig instantiate, build logs, ImageStreamTags), and a build simulator stands in for OpenShift's
// build controller. Everything else is the real API server: validation, RBAC, watches, conflicts.
package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure Start. The zero value works.
type Options struct {
	CacheDir string    // where binaries are cached; DefaultCacheDir() when empty
	RunDir   string    // where the cluster keeps its state; a new temporary directory when empty
	Versions Versions  // DefaultVersions when empty
	Nodes    int       // KWOK fake nodes; 2 when 0
	Log      io.Writer // progress; os.Stderr when nil
	// RealNode starts a real node (kubelet, containerd, runc) beside the KWOK nodes; see CheckRealNode for what
	// it needs. RepoRoot is the repository its images are built from (found from the working directory when
	// empty).
	RealNode bool
	RepoRoot string
	// Tekton (which implies RealNode) runs Tekton Pipelines and Triggers at the versions go.mod pins: their CRDs,
	// ConfigMaps and RBAC from the modules' config/, and their controllers, webhook, resolvers and core
	// interceptors as processes with Tekton's own ServiceAccounts; TaskRun pods run on the real node.
	Tekton bool
}

// Cluster is a running local control plane.
type Cluster struct {
	RunDir string
	// Kubeconfig is an admin kubeconfig whose server is the OpenShift API shim (use it for everything).
	Kubeconfig string
	// ShimURL is the shim's address; APIServerURL is kube-apiserver's, behind it.
	ShimURL, APIServerURL string
	CAData                []byte
	// AuditLog is kube-apiserver's audit log (Metadata level, one JSON event a line).
	AuditLog string

	adminToken string
	procs      []*process
	shim       *Shim
	cancel     context.CancelFunc
	node       *RealNode
	tekton     *TektonRuntime
	owned      bool
	log        io.Writer
	cacheDir   string // where InstallTekton caches what it reads; DefaultCacheDir() when empty
}

// State is what a running cluster writes to RunDir/cluster.json, so that other processes can attach to it.
type State struct {
	Kubeconfig   string `json:"kubeconfig"`
	ShimURL      string `json:"shimURL"`
	APIServerURL string `json:"apiServerURL"`
	AuditLog     string `json:"auditLog"`
	PID          int    `json:"pid"`
}

const stateFile = "cluster.json"

// Start builds (on first use) and starts a control plane. Call Stop when done; if this process dies instead,
// the kernel kills the components (see spawner).
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Versions == (Versions{}) {
		o.Versions = DefaultVersions
	}
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.CacheDir == "" {
		if o.CacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	cleanStaleNodes(o.CacheDir, o.Log) // what a real node of a crashed process left
	var tektonBins TektonBinaries
	if o.Tekton {
		o.RealNode = true
		if err := CheckRealNode(); err != nil {
			return nil, fmt.Errorf("Tekton runs its TaskRuns' pods on the real node: %w", err)
		}
		if tektonBins, err = EnsureTektonBinaries(ctx, o.CacheDir, o.Log); err != nil {
			return nil, err
		}
	}
	bins, err := Prepare(ctx, o.CacheDir, o.Versions, o.Log)
	if err != nil {
		return nil, err
	}
	crds, err := ensureCRDs(ctx, o.CacheDir, o.Log)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if o.RunDir == "" {
		if o.RunDir, err = os.MkdirTemp("", "canaryline-devcluster-"); err != nil {
			return nil, err
		}
	}
	logs, pids := filepath.Join(o.RunDir, "logs"), filepath.Join(o.RunDir, "pids")
	killStale(pids)
	for _, d := range []string{"etcd", "pki", "logs", "pids", "apiserver-certs", stateFile} { // a reused run directory
		if err := os.RemoveAll(filepath.Join(o.RunDir, d)); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{logs, pids, filepath.Join(o.RunDir, "etcd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	c = &Cluster{RunDir: o.RunDir, owned: true, log: o.Log, cacheDir: o.CacheDir}
	defer func() {
		if err != nil {
			fmt.Fprintf(o.Log, "devcluster: start failed; logs kept in %s\n", logs)
			c.stop(false)
		}
	}()

	p, err := newPKI(filepath.Join(o.RunDir, "pki"))
	if err != nil {
		return c, err
	}
	var nodeFlags []string
	if o.RealNode {
		if o.RepoRoot == "" {
			if o.RepoRoot, err = findRepoRoot(); err != nil {
				return c, err
			}
		}
		if c.node, err = startRealNode(ctx, o.CacheDir, o.RepoRoot, o.RunDir, o.Log); err != nil {
			return c, err
		}
		c.node.images.Extra = tektonBins.Images
		if nodeFlags, err = c.node.apiserverFlags(p); err != nil {
			return c, err
		}
	}
	c.CAData, c.adminToken = p.CAData, p.AdminToken
	ports, err := freePorts(4)
	if err != nil {
		return c, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	c.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	c.ShimURL = "https://127.0.0.1:" + strconv.Itoa(ports[3])

	etcd, err := c.start("etcd", bins, logs, pids,
		"--name=local", "--data-dir="+filepath.Join(o.RunDir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=local="+peerURL, "--unsafe-no-fsync=true", "--log-level=warn")
	if err != nil {
		return c, err
	}
	if err := waitFor(ctx, "etcd", 30*time.Second, etcd, httpOK(http.DefaultClient, etcdURL+"/health", "")); err != nil {
		return c, err
	}

	c.AuditLog = filepath.Join(logs, "audit.log")
	policy := filepath.Join(o.RunDir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return c, err
	}
	apiArgs := []string{"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(ports[2]),
		"--tls-cert-file=" + p.ServingCert, "--tls-private-key-file=" + p.ServeKey,
		"--cert-dir=" + filepath.Join(o.RunDir, "apiserver-certs"),
		"--client-ca-file=" + p.CACert, "--token-auth-file=" + p.Tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPub, "--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none", // else it complains about the loopback advertise address
		"--enable-priority-and-fairness=false", "--profiling=false",
		"--audit-policy-file=" + policy, "--audit-log-path=" + c.AuditLog, "--audit-log-format=json",
		"--audit-log-mode=blocking", "--v=1"}
	api, err := c.start("kube-apiserver", bins, logs, pids, withFlags(apiArgs, nodeFlags)...)
	if err != nil {
		return c, err
	}
	apiClient := tlsClient(p.CAData)
	if err := waitFor(ctx, "kube-apiserver", 120*time.Second, api, httpOK(apiClient, c.APIServerURL+"/readyz", p.AdminToken)); err != nil {
		return c, err
	}

	kc := map[string]string{}
	for _, name := range components {
		kc[name] = filepath.Join(o.RunDir, name+".kubeconfig")
		if err := writeKubeconfig(kc[name], c.APIServerURL, p.CAData, p.ComponentTokens[name]); err != nil {
			return c, err
		}
	}
	c.Kubeconfig = filepath.Join(o.RunDir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.ShimURL, p.CAData, p.AdminToken); err != nil {
		return c, err
	}

	if _, err := c.start("kube-controller-manager", bins, logs, pids,
		"--kubeconfig="+kc["kube-controller-manager"], "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+p.SAKey, "--root-ca-file="+p.CACert,
		"--use-service-account-credentials=false",
		"--kube-api-qps=100", "--kube-api-burst=200", "--v=1"); err != nil {
		return c, err
	}
	if _, err := c.start("kube-scheduler", bins, logs, pids,
		"--kubeconfig="+kc["kube-scheduler"], "--leader-elect=false", "--secure-port=0", "--v=1"); err != nil {
		return c, err
	}
	kwok, err := c.start("kwok", bins, logs, pids,
		"--kubeconfig="+kc["kwok"], "--config="+bins.KWOKStages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40", "--cidr=10.244.0.1/16", "--node-ip=10.99.0.1")
	if err != nil {
		return c, err
	}

	direct := c.restConfig(c.APIServerURL)
	shimUpstream := rest.CopyConfig(direct)
	shimUpstream.BearerToken = p.ComponentTokens["devcluster-shim"]
	if err := installCRDs(ctx, direct, crds); err != nil {
		return c, err
	}
	kube, err := kubernetes.NewForConfig(direct)
	if err != nil {
		return c, err
	}
	if err := createNodes(ctx, kube, o.Nodes); err != nil {
		return c, err
	}
	if err := applyClusterRoles(ctx, kube, DefaultClusterRoles()); err != nil {
		return c, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if c.shim, err = startShim(runCtx, shimConfig{
		Addr: "127.0.0.1:" + strconv.Itoa(ports[3]), Upstream: shimUpstream,
		CertFile: p.ServingCert, KeyFile: p.ServeKey, Log: o.Log,
	}); err != nil {
		return c, err
	}

	if err := waitFor(ctx, "kwok nodes Ready", 60*time.Second, kwok, func(ctx context.Context) bool {
		nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) < o.Nodes {
			return false
		}
		for _, n := range nodes.Items {
			if !nodeReady(&n) {
				return false
			}
		}
		return true
	}); err != nil {
		return c, err
	}
	if err := waitAggregated(ctx, kube, DefaultClusterRoles()); err != nil {
		return c, err
	}
	if err := waitFor(ctx, "kube-controller-manager (default ServiceAccount)", 60*time.Second, nil, func(ctx context.Context) bool {
		_, err := kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return c, err
	}
	if err := waitFor(ctx, "shim", 10*time.Second, nil, httpOK(apiClient, c.ShimURL+"/readyz", p.AdminToken)); err != nil {
		return c, err
	}
	if c.node != nil {
		if err := c.node.run(ctx, c, p, strings.TrimPrefix(c.ShimURL, "https://"), strings.TrimPrefix(c.APIServerURL, "https://")); err != nil {
			return c, err
		}
	}
	if o.Tekton {
		if err := c.startTekton(ctx, tektonBins, p); err != nil {
			return c, err
		}
	}
	st := State{Kubeconfig: c.Kubeconfig, ShimURL: c.ShimURL, APIServerURL: c.APIServerURL, AuditLog: c.AuditLog, PID: os.Getpid()}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(filepath.Join(o.RunDir, stateFile), data, 0o644); err != nil {
		return c, err
	}
	fmt.Fprintf(o.Log, "devcluster: control plane up in %s (%d KWOK nodes); KUBECONFIG=%s\n",
		time.Since(t0).Round(time.Millisecond), o.Nodes, c.Kubeconfig)
	return c, nil
}

// withFlags is args with flags added; a flag given again replaces the one in args.
func withFlags(args, flags []string) []string {
	name := func(f string) string { n, _, _ := strings.Cut(f, "="); return n }
	var out []string
	for _, a := range args {
		replaced := false
		for _, f := range flags {
			replaced = replaced || name(f) == name(a)
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return append(out, flags...)
}

// findRepoRoot is the repository the working directory is in (its go.mod names the project's module).
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/canaryline/canaryline\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the real node's images are built from the canaryline repository: run from it, or set Options.RepoRoot")
		}
		dir = parent
	}
}

// Attach connects to a cluster that another process started in runDir (see State). Stop on it does nothing.
func Attach(runDir string) (*Cluster, error) {
	data, err := os.ReadFile(filepath.Join(runDir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("attach to the cluster in %s: %w", runDir, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(runDir, stateFile), err)
	}
	if st.PID <= 0 || !processAlive(st.PID) {
		return nil, fmt.Errorf("attach to the cluster in %s: its supervisor (pid %d) is not running", runDir, st.PID)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", st.Kubeconfig, err)
	}
	return &Cluster{RunDir: runDir, Kubeconfig: st.Kubeconfig, ShimURL: st.ShimURL, APIServerURL: st.APIServerURL,
		AuditLog: st.AuditLog, CAData: cfg.CAData, adminToken: cfg.BearerToken, log: io.Discard}, nil
}

// Stop stops every component (SIGTERM, then SIGKILL) and removes the run directory.
func (c *Cluster) Stop() { c.stop(true) }

func (c *Cluster) stop(removeDir bool) {
	if c == nil || !c.owned {
		return
	}
	t0 := time.Now()
	c.tekton.stop()
	c.node.stop() // before the apiserver: kubelet and containerd go first
	if c.cancel != nil {
		c.cancel()
	}
	if c.shim != nil {
		c.shim.close()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop(5 * time.Second)
	}
	c.procs = nil
	if removeDir {
		_ = os.RemoveAll(c.RunDir)
	}
	fmt.Fprintf(c.log, "devcluster: stopped in %s\n", time.Since(t0).Round(time.Millisecond))
}

// Alive reports which components have exited, if any.
func (c *Cluster) Alive() error {
	var errs []error
	for _, p := range c.procs {
		if p.exited() {
			errs = append(errs, fmt.Errorf("%s exited: %v (see %s)", p.name, p.err, p.log))
		}
	}
	return errors.Join(errs...)
}

// Config is an admin rest.Config (system:masters) through the shim.
func (c *Cluster) Config() *rest.Config { return c.restConfig(c.ShimURL) }

func (c *Cluster) restConfig(host string) *rest.Config {
	return &rest.Config{Host: host, BearerToken: c.adminToken, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData},
		QPS: 100, Burst: 200}
}

// TokenConfig is a rest.Config through the shim that authenticates with token (e.g. a ServiceAccount token).
func (c *Cluster) TokenConfig(token string) *rest.Config {
	return &rest.Config{Host: c.ShimURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData}}
}

// WriteKubeconfig writes a kubeconfig for token to path, with namespace as its default.
func (c *Cluster) WriteKubeconfig(path, token, namespace string) error {
	return writeKubeconfigNS(path, c.ShimURL, c.CAData, token, namespace)
}

func (c *Cluster) start(name string, bins Binaries, logs, pids string, args ...string) (*process, error) {
	p, err := startProcess(name, bins.Path(name), args, logs, pids)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

func writeKubeconfig(path, server string, caData []byte, token string) error {
	return writeKubeconfigNS(path, server, caData, token, "")
}

func writeKubeconfigNS(path, server string, caData []byte, token, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["devcluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["devcluster"] = &clientcmdapi.Context{Cluster: "devcluster", AuthInfo: "user", Namespace: namespace}
	cfg.CurrentContext = "devcluster"
	return clientcmd.WriteToFile(*cfg, path)
}

func createNodes(ctx context.Context, kube kubernetes.Interface, n int) error {
	for i := range n {
		name := fmt.Sprintf("kwok-node-%d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
			Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
				"kubernetes.io/arch": "amd64", "type": "kwok"},
		}}
		if _, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Node %s: %w", name, err)
		}
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// state is the field after the parenthesised command name; Z is a zombie
	for i := len(data) - 1; i > 0; i-- {
		if data[i] == ')' && i+2 < len(data) {
			return data[i+2] != 'Z'
		}
	}
	return true
}

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  userGroups: ["system:nodes"]
- level: None
  users: ["system:apiserver", "system:devcluster:kube-controller-manager", "system:devcluster:kube-scheduler",
          "system:devcluster:kwok", "system:devcluster:devcluster-shim"]
- level: None
  nonResourceURLs: ["/readyz*", "/healthz*", "/livez*", "/version", "/openapi*"]
- level: Metadata
`
