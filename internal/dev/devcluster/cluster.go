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
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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
	s := &starter{o: o}
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := s.prepareRunDir(); err != nil {
		return nil, err
	}
	c = &Cluster{RunDir: s.o.RunDir, owned: true, log: s.o.Log, cacheDir: s.o.CacheDir}
	s.c = c
	defer func() {
		if err != nil {
			fmt.Fprintf(s.o.Log, "devcluster: start failed; logs kept in %s\n", s.logs)
			c.stop(false)
		}
	}()
	for _, phase := range []func(context.Context) error{
		s.pkiAndRealNode, s.startEtcd, s.startAPIServer, s.startControllers, s.seedAPI, s.waitReady,
		s.runRealNodeAndTekton, s.writeState,
	} {
		if err := phase(ctx); err != nil {
			return c, err
		}
	}
	fmt.Fprintf(s.o.Log, "devcluster: control plane up in %s (%d KWOK nodes); KUBECONFIG=%s\n",
		time.Since(t0).Round(time.Millisecond), s.o.Nodes, c.Kubeconfig)
	return c, nil
}

// starter holds what Start's phases share: the options (defaults filled in), the built binaries, the run
// directory's parts, the PKI, the ports and the clients of the started control plane.
type starter struct {
	o          Options
	c          *Cluster
	bins       Binaries
	tektonBins TektonBinaries
	crds       []*apiextensionsv1.CustomResourceDefinition
	logs, pids string
	p          *pki
	nodeFlags  []string
	ports      []int
	etcdURL    string
	kc         map[string]string // the components' kubeconfigs
	apiClient  *http.Client
	kwok       *process
	kube       kubernetes.Interface
}

// prepare fills in the options' defaults and builds (on first use) what the cluster runs: the control plane,
// Tekton when asked for, and the CRDs.
func (s *starter) prepare(ctx context.Context) (err error) {
	if err := s.defaults(); err != nil {
		return err
	}
	cleanStaleNodes(s.o.CacheDir, s.o.Log) // what a real node of a crashed process left
	if s.o.Tekton {
		s.o.RealNode = true
		if err := CheckRealNode(); err != nil {
			return fmt.Errorf("Tekton runs its TaskRuns' pods on the real node: %w", err)
		}
		if s.tektonBins, err = EnsureTektonBinaries(ctx, s.o.CacheDir, s.o.Log); err != nil {
			return err
		}
	}
	if s.bins, err = Prepare(ctx, s.o.CacheDir, s.o.Versions, s.o.Log); err != nil {
		return err
	}
	s.crds, err = ensureCRDs(ctx, s.o.CacheDir, s.o.Log)
	return err
}

// defaults fills in the zero options.
func (s *starter) defaults() (err error) {
	if s.o.Log == nil {
		s.o.Log = os.Stderr
	}
	if s.o.Versions == (Versions{}) {
		s.o.Versions = DefaultVersions
	}
	if s.o.Nodes == 0 {
		s.o.Nodes = 2
	}
	if s.o.CacheDir == "" {
		s.o.CacheDir, err = DefaultCacheDir()
	}
	return err
}

// prepareRunDir creates the run directory (or empties the parts of a reused one) and kills what a previous run
// in it left.
func (s *starter) prepareRunDir() (err error) {
	if s.o.RunDir == "" {
		if s.o.RunDir, err = os.MkdirTemp("", "canaryline-devcluster-"); err != nil {
			return err
		}
	}
	s.logs, s.pids = filepath.Join(s.o.RunDir, "logs"), filepath.Join(s.o.RunDir, "pids")
	killStale(s.pids)
	for _, d := range []string{"etcd", "pki", "logs", "pids", "apiserver-certs", stateFile} { // a reused run directory
		if err := os.RemoveAll(filepath.Join(s.o.RunDir, d)); err != nil {
			return err
		}
	}
	for _, d := range []string{s.logs, s.pids, filepath.Join(s.o.RunDir, "etcd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// pkiAndRealNode creates the certificates and tokens, starts the real node's runtime when asked for (it adds
// flags to kube-apiserver's) and picks the ports.
func (s *starter) pkiAndRealNode(ctx context.Context) (err error) {
	c := s.c
	if s.p, err = newPKI(filepath.Join(s.o.RunDir, "pki")); err != nil {
		return err
	}
	if s.o.RealNode {
		if s.o.RepoRoot == "" {
			if s.o.RepoRoot, err = findRepoRoot(); err != nil {
				return err
			}
		}
		if c.node, err = startRealNode(ctx, s.o.CacheDir, s.o.RepoRoot, s.o.RunDir, s.o.Log); err != nil {
			return err
		}
		c.node.images.Extra = s.tektonBins.Images
		if s.nodeFlags, err = c.node.apiserverFlags(s.p); err != nil {
			return err
		}
	}
	c.CAData, c.adminToken = s.p.CAData, s.p.AdminToken
	if s.ports, err = FreePorts(4); err != nil {
		return err
	}
	s.etcdURL = "http://127.0.0.1:" + strconv.Itoa(s.ports[0])
	c.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(s.ports[2])
	c.ShimURL = "https://127.0.0.1:" + strconv.Itoa(s.ports[3])
	return nil
}

// startEtcd starts etcd and waits for its health check.
func (s *starter) startEtcd(ctx context.Context) error {
	peerURL := "http://127.0.0.1:" + strconv.Itoa(s.ports[1])
	etcd, err := s.c.start("etcd", s.bins, s.logs, s.pids,
		"--name=local", "--data-dir="+filepath.Join(s.o.RunDir, "etcd"),
		"--listen-client-urls="+s.etcdURL, "--advertise-client-urls="+s.etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=local="+peerURL, "--unsafe-no-fsync=true", "--log-level=warn")
	if err != nil {
		return err
	}
	return waitFor(ctx, "etcd", 30*time.Second, etcd, httpOK(http.DefaultClient, s.etcdURL+"/health", ""))
}

// startAPIServer starts kube-apiserver with its audit log, waits for /readyz and writes the kubeconfigs.
func (s *starter) startAPIServer(ctx context.Context) error {
	c, p := s.c, s.p
	c.AuditLog = filepath.Join(s.logs, "audit.log")
	policy := filepath.Join(s.o.RunDir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return err
	}
	apiArgs := []string{"--etcd-servers=" + s.etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(s.ports[2]),
		"--tls-cert-file=" + p.ServingCert, "--tls-private-key-file=" + p.ServeKey,
		"--cert-dir=" + filepath.Join(s.o.RunDir, "apiserver-certs"),
		"--client-ca-file=" + p.CACert, "--token-auth-file=" + p.Tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPub, "--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none", // else it complains about the loopback advertise address
		"--enable-priority-and-fairness=false", "--profiling=false",
		"--audit-policy-file=" + policy, "--audit-log-path=" + c.AuditLog, "--audit-log-format=json",
		"--audit-log-mode=blocking", "--v=1"}
	api, err := c.start("kube-apiserver", s.bins, s.logs, s.pids, withFlags(apiArgs, s.nodeFlags)...)
	if err != nil {
		return err
	}
	s.apiClient = tlsClient(p.CAData)
	if err := waitFor(ctx, "kube-apiserver", 120*time.Second, api, httpOK(s.apiClient, c.APIServerURL+"/readyz", p.AdminToken)); err != nil {
		return err
	}
	return s.writeKubeconfigs()
}

// writeKubeconfigs writes one kubeconfig per component (to kube-apiserver) and the admin one (to the shim).
func (s *starter) writeKubeconfigs() error {
	s.kc = map[string]string{}
	for _, name := range components {
		s.kc[name] = filepath.Join(s.o.RunDir, name+".kubeconfig")
		if err := writeKubeconfig(s.kc[name], s.c.APIServerURL, s.p.CAData, s.p.ComponentTokens[name]); err != nil {
			return err
		}
	}
	s.c.Kubeconfig = filepath.Join(s.o.RunDir, "kubeconfig")
	return writeKubeconfig(s.c.Kubeconfig, s.c.ShimURL, s.p.CAData, s.p.AdminToken)
}

// startControllers starts kube-controller-manager, kube-scheduler and kwok.
func (s *starter) startControllers(context.Context) (err error) {
	c, p, kc := s.c, s.p, s.kc
	if _, err := c.start("kube-controller-manager", s.bins, s.logs, s.pids,
		"--kubeconfig="+kc["kube-controller-manager"], "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+p.SAKey, "--root-ca-file="+p.CACert,
		"--use-service-account-credentials=false",
		"--kube-api-qps=100", "--kube-api-burst=200", "--v=1"); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", s.bins, s.logs, s.pids,
		"--kubeconfig="+kc["kube-scheduler"], "--leader-elect=false", "--secure-port=0", "--v=1"); err != nil {
		return err
	}
	s.kwok, err = c.start("kwok", s.bins, s.logs, s.pids,
		"--kubeconfig="+kc["kwok"], "--config="+s.bins.KWOKStages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40", "--cidr=10.244.0.1/16", "--node-ip=10.99.0.1")
	return err
}

// seedAPI installs the CRDs, the KWOK nodes and the cluster roles, then starts the OpenShift API shim.
func (s *starter) seedAPI(ctx context.Context) (err error) {
	c := s.c
	direct := c.restConfig(c.APIServerURL)
	shimUpstream := rest.CopyConfig(direct)
	shimUpstream.BearerToken = s.p.ComponentTokens["devcluster-shim"]
	if err := installCRDs(ctx, direct, s.crds); err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(direct)
	if err != nil {
		return err
	}
	s.kube = kube
	if err := createNodes(ctx, kube, s.o.Nodes); err != nil {
		return err
	}
	if err := applyClusterRoles(ctx, kube, DefaultClusterRoles()); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.shim, err = startShim(runCtx, shimConfig{
		Addr: "127.0.0.1:" + strconv.Itoa(s.ports[3]), Upstream: shimUpstream,
		CertFile: s.p.ServingCert, KeyFile: s.p.ServeKey, Log: s.o.Log,
	})
	return err
}

// waitReady waits for the KWOK nodes, the aggregated cluster roles, the default ServiceAccount and the shim.
func (s *starter) waitReady(ctx context.Context) error {
	kube := s.kube
	if err := waitFor(ctx, "kwok nodes Ready", 60*time.Second, s.kwok, func(ctx context.Context) bool {
		nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) < s.o.Nodes {
			return false
		}
		for _, n := range nodes.Items {
			if !nodeReady(&n) {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	if err := waitAggregated(ctx, kube, DefaultClusterRoles()); err != nil {
		return err
	}
	if err := waitFor(ctx, "kube-controller-manager (default ServiceAccount)", 60*time.Second, nil, func(ctx context.Context) bool {
		_, err := kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}
	return waitFor(ctx, "shim", 10*time.Second, nil, httpOK(s.apiClient, s.c.ShimURL+"/readyz", s.p.AdminToken))
}

// runRealNodeAndTekton joins the real node (when asked for) and starts Tekton (when asked for).
func (s *starter) runRealNodeAndTekton(ctx context.Context) error {
	c := s.c
	if c.node != nil {
		if err := c.node.run(ctx, c, s.p, strings.TrimPrefix(c.ShimURL, "https://"), strings.TrimPrefix(c.APIServerURL, "https://")); err != nil {
			return err
		}
	}
	if s.o.Tekton {
		return c.startTekton(ctx, s.tektonBins, s.p)
	}
	return nil
}

// writeState writes RunDir/cluster.json, for other processes to attach to the cluster.
func (s *starter) writeState(context.Context) error {
	c := s.c
	st := State{Kubeconfig: c.Kubeconfig, ShimURL: c.ShimURL, APIServerURL: c.APIServerURL, AuditLog: c.AuditLog, PID: os.Getpid()}
	data, _ := json.MarshalIndent(st, "", "  ")
	return os.WriteFile(filepath.Join(s.o.RunDir, stateFile), data, 0o644)
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

// FreePorts finds n free loopback TCP ports (held open together, so they differ).
func FreePorts(n int) ([]int, error) {
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
