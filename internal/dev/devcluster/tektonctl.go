package devcluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Where Tekton runs, as upstream installs it.
const (
	TektonNamespace          = "tekton-pipelines"
	TektonResolversNamespace = "tekton-pipelines-resolvers"
	// TektonStorageClass is the default StorageClass of a cluster with Tekton: the local volume provisioner
	// (provisioner.go) makes a directory of the real node into a PersistentVolume for each claim.
	TektonStorageClass = "canaryline-local"
	fieldManager       = "canaryline-devcluster"
	// In the node's network namespace: Tekton's webhook (forwarded to the host), the core interceptors, the
	// first EventListener sink.
	nodeWebhookPort     = 9443
	interceptorsPort    = 8443
	firstSinkPort       = 38080 // above the ports Services use: the Service proxy listens on theirs in the namespace
	tektonWebhookSecret = "webhook-certs"
)

// tektonManifests are the files of the modules' config/ applied as upstream's release.yaml would: everything but
// the Deployments (their programs run as processes here) and the Triggers webhook's files (it does not run).
var tektonManifests = []struct {
	module string
	globs  []string
}{
	{TektonPipeline, []string{"config/100-namespace/*.yaml", "config/200-*.yaml", "config/201-*.yaml", "config/300-crds/*.yaml",
		"config/500-webhooks.yaml", "config/config-*.yaml", "config/clusterrole-aggregate-*.yaml", "config/webhook.yaml",
		"config/resolvers/*.yaml"}},
	{TektonTriggers, []string{"config/200-*.yaml", "config/201-*.yaml", "config/300-*.yaml", "config/config-*.yaml",
		"config/clusterrole-aggregate-*.yaml", "config/interceptors/*.yaml"}},
}

// skippedKinds are not applied: what would run Tekton's programs as pods.
var skippedKinds = map[string]bool{"Deployment": true, "HorizontalPodAutoscaler": true, "PodDisruptionBudget": true}

// TektonRuntime is Tekton running on a cluster: the pipelines controller, its webhook and the resolvers
// controller, Triggers' controller and core interceptors, and the EventListener sinks started so far.
type TektonRuntime struct {
	c    *Cluster
	bins TektonBinaries
	mu   sync.Mutex
	// sinks are the EventListeners' sink URLs on the host, by namespace/name.
	sinks    map[string]string
	nextSink int
	stops    []func()
	logs     string
	// StartTime is how long Tekton took to start, from its manifests to its webhook answering.
	StartTime time.Duration
}

// Tekton is the cluster's Tekton (nil without Options.Tekton).
func (c *Cluster) Tekton() *TektonRuntime { return c.tekton }

// Logs is the directory of the Tekton programs' logs.
func (t *TektonRuntime) Logs() string { return t.logs }

// startTekton installs Tekton's and Triggers' manifests and runs their programs with their own ServiceAccounts.
func (c *Cluster) startTekton(ctx context.Context, bins TektonBinaries, p *pki) (err error) {
	t0 := time.Now()
	t := &TektonRuntime{c: c, bins: bins, sinks: map[string]string{}, nextSink: firstSinkPort, logs: filepath.Join(c.RunDir, "logs")}
	c.tekton = t
	cfg := c.restConfig(c.APIServerURL)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := t.install(ctx, kube, dyn, p); err != nil {
		return err
	}
	if err := t.startPrograms(ctx, kube); err != nil {
		return err
	}
	if err := t.waitReady(ctx, kube, dyn); err != nil {
		return err
	}
	t.StartTime = time.Since(t0)
	fmt.Fprintf(c.log, "devcluster: Tekton %s and Triggers %s running in %s (logs in %s)\n", TektonPipeline, TektonTriggers,
		t.StartTime.Round(time.Millisecond), t.logs)
	return nil
}

// install applies Tekton's and Triggers' manifests (adjusted to the local cluster), the interceptors'
// certificate and the volume provisioner.
func (t *TektonRuntime) install(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, p *pki) error {
	objs, err := readTektonManifests(ctx)
	if err != nil {
		return err
	}
	for _, o := range objs {
		adjustTektonObject(o)
		if o.GetKind() == "ClusterInterceptor" { // the CA of the certificate interceptorCerts makes
			_ = unstructured.SetNestedField(o.Object, base64.StdEncoding.EncodeToString(p.CAData), "spec", "clientConfig", "caBundle")
		}
	}
	if err := applyAll(ctx, kube, dyn, objs); err != nil {
		return err
	}
	if err := t.interceptorCerts(ctx, kube, p); err != nil {
		return err
	}
	return t.c.startProvisioner(ctx, kube)
}

// tektonProcess is one Tekton program run as a process: its namespace and ServiceAccount, its environment and
// flags, and whether it runs in the real node's network namespace.
type tektonProcess struct {
	name, ns, account string
	env, args         []string
	inNode            bool
}

// tektonProcesses are the programs Tekton and Triggers run, the webhook listening on webhookPort.
func tektonProcesses(webhookPort int) []tektonProcess {
	return []tektonProcess{
		{name: "controller", ns: TektonNamespace, account: "tekton-pipelines-controller",
			env: []string{"CONFIG_DEFAULTS_NAME=config-defaults", "CONFIG_LOGGING_NAME=config-logging",
				"CONFIG_OBSERVABILITY_NAME=config-observability", "CONFIG_FEATURE_FLAGS_NAME=feature-flags",
				"CONFIG_LEADERELECTION_NAME=config-leader-election-controller", "CONFIG_SPIRE=config-spire",
				"METRICS_DOMAIN=tekton.dev/pipeline"},
			args: []string{"-disable-ha", "-entrypoint-image=" + TektonImage("entrypoint"), "-nop-image=" + TektonImage("nop"),
				"-sidecarlogresults-image=" + TektonImage("sidecarlogresults"), "-workingdirinit-image=" + TektonImage("workingdirinit"),
				// The Tasks run no scripts: the shell images are never pulled, but the controller wants them named.
				"-shell-image=" + TektonImage("nop"), "-shell-image-win=" + TektonImage("nop")}},
		{name: "webhook", ns: TektonNamespace, account: "tekton-pipelines-webhook",
			env: []string{"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
				"CONFIG_LEADERELECTION_NAME=config-leader-election-webhook", "CONFIG_FEATURE_FLAGS_NAME=feature-flags",
				"WEBHOOK_PORT=" + strconv.Itoa(webhookPort), "WEBHOOK_ADMISSION_CONTROLLER_NAME=webhook.pipeline.tekton.dev",
				"WEBHOOK_SERVICE_NAME=tekton-pipelines-webhook", "WEBHOOK_SECRET_NAME=" + tektonWebhookSecret,
				"METRICS_DOMAIN=tekton.dev/pipeline"},
			args: []string{"-disable-ha"}},
		{name: "resolvers", ns: TektonResolversNamespace, account: "tekton-pipelines-resolvers",
			env: []string{"CONFIG_LOGGING_NAME=config-logging", "CONFIG_OBSERVABILITY_NAME=config-observability",
				"CONFIG_FEATURE_FLAGS_NAME=feature-flags", "CONFIG_LEADERELECTION_NAME=config-leader-election-resolvers",
				"METRICS_DOMAIN=tekton.dev/resolution", "TEKTON_HUB_API=", "ARTIFACT_HUB_API="}},
		{name: "triggers-controller", ns: TektonNamespace, account: "tekton-triggers-controller",
			env: []string{"CONFIG_LOGGING_NAME=config-logging-triggers", "CONFIG_OBSERVABILITY_NAME=config-observability-triggers",
				"CONFIG_DEFAULTS_NAME=config-defaults-triggers", "METRICS_DOMAIN=tekton.dev/triggers",
				"CONFIG_LEADERELECTION_NAME=config-leader-election-triggers-controllers"},
			// The EventListeners' sinks run as processes (StartEventListener); their Deployments are not run.
			args: []string{"-el-image=" + TektonImage("nop"), "-el-port=8080", "-el-events=disable"}},
		{name: "interceptors", ns: TektonNamespace, account: "tekton-triggers-core-interceptors", inNode: true,
			env: []string{"CONFIG_LOGGING_NAME=config-logging-triggers", "CONFIG_OBSERVABILITY_NAME=config-observability-triggers",
				"METRICS_DOMAIN=tekton.dev/triggers", "INTERCEPTOR_TLS_SVC_NAME=tekton-triggers-core-interceptors",
				"INTERCEPTOR_TLS_SECRET_NAME=tekton-triggers-core-interceptors-certs"}},
	}
}

// startPrograms exposes the webhook and starts Tekton's programs, each with its ServiceAccount's kubeconfig.
func (t *TektonRuntime) startPrograms(ctx context.Context, kube kubernetes.Interface) error {
	c := t.c
	ports, err := FreePorts(12)
	if err != nil {
		return err
	}
	webhookPort := ports[0]
	if err := t.exposeWebhook(ctx, kube, webhookPort); err != nil {
		return err
	}
	for i, prog := range tektonProcesses(webhookPort) {
		server := c.APIServerURL
		if prog.inNode {
			server = "https://127.0.0.1:6443" // the node's forwarder to kube-apiserver
		}
		kubeconfig, err := t.accountKubeconfig(ctx, kube, prog.ns, prog.account, server)
		if err != nil {
			return err
		}
		env := append([]string{"SYSTEM_NAMESPACE=" + prog.ns, "KUBERNETES_MIN_VERSION=v1.28.0",
			"PROBES_PORT=" + strconv.Itoa(ports[1+2*i]), "METRICS_PROMETHEUS_PORT=" + strconv.Itoa(ports[2+2*i]),
			"PROFILING_PORT=0", "HOME=" + c.RunDir}, prog.env...)
		if _, err := t.run(prog.name, prog.inNode, env, append([]string{"-kubeconfig=" + kubeconfig}, prog.args...)...); err != nil {
			return err
		}
	}
	return nil
}

// run starts one Tekton program, on the host or in the node's network namespace.
func (t *TektonRuntime) run(name string, inNode bool, env []string, args ...string) (*process, error) {
	cmd := exec.Command(t.bins.Path(name), args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	ns := ""
	if inNode {
		ns = t.c.node.ns.path
	}
	p, err := startProcessWith("tekton-"+name, cmd, ns, t.logs, filepath.Join(t.c.RunDir, "pids"))
	if err != nil {
		return nil, err
	}
	t.c.procs = append(t.c.procs, p)
	return p, nil
}

// accountKubeconfig writes a kubeconfig with a token of ServiceAccount ns/name (a day long).
func (t *TektonRuntime) accountKubeconfig(ctx context.Context, kube kubernetes.Interface, ns, name, server string) (string, error) {
	tr, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr[int64](24 * 3600)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("a token of Tekton's ServiceAccount %s/%s: %w", ns, name, err)
	}
	path := filepath.Join(t.c.RunDir, "tekton-"+ns+"-"+name+".kubeconfig")
	return path, writeKubeconfigNS(path, server, t.c.CAData, tr.Status.Token, ns)
}

// readTektonManifests reads the objects of tektonManifests from the module cache, in file order.
func readTektonManifests(ctx context.Context) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, src := range tektonManifests {
		dir, err := moduleDir(ctx, src.module)
		if err != nil {
			return nil, err
		}
		files, err := globAll(dir, src.globs)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			objs, err := ReadObjects(f)
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				if keepTektonObject(src.module, o) {
					out = append(out, o)
				}
			}
		}
	}
	return out, nil
}

// keepTektonObject says whether an object of module's manifests is installed (some kinds are skipped), and
// turns off the conversion webhook of Triggers' CRDs.
func keepTektonObject(module string, o *unstructured.Unstructured) bool {
	if skippedKinds[o.GetKind()] || o.GetKind() == "" {
		return false
	}
	// Only the webhook's Service is used (by the API server). The others would have the node's
	// Service proxy listen on their ports there, where the interceptors and sinks listen on all
	// addresses.
	if o.GetKind() == "Service" && o.GetName() != "tekton-pipelines-webhook" {
		return false
	}
	if module == TektonTriggers && o.GetKind() == "CustomResourceDefinition" {
		_ = unstructured.SetNestedMap(o.Object, map[string]any{"strategy": "None"}, "spec", "conversion")
	}
	return true
}

// adjustTektonObject makes the changes a local cluster needs (the README lists them): the webhook's Service
// loses its selector (its EndpointSlice is made by hand); the affinity assistant
// is disabled; TaskRun pods go to the real node; the core interceptors are reached on the node's loopback.
func adjustTektonObject(o *unstructured.Unstructured) {
	switch {
	case o.GetKind() == "Service":
		unstructured.RemoveNestedField(o.Object, "spec", "selector")
	case o.GetKind() == "ConfigMap" && o.GetName() == "feature-flags" && o.GetNamespace() == TektonNamespace:
		// One real node: co-scheduling TaskRuns with their workspace brings nothing and adds a pod per PipelineRun.
		_ = unstructured.SetNestedField(o.Object, "disabled", "data", "coschedule")
		// No sidecars are injected here: steps need not wait for the pod's ready annotation to reach its
		// downward API volume (kubelet's next sync), which Tekton documents as the faster setting.
		_ = unstructured.SetNestedField(o.Object, "false", "data", "running-in-environment-with-injected-sidecars")
	case o.GetKind() == "ConfigMap" && o.GetName() == "config-defaults" && o.GetNamespace() == TektonNamespace:
		tmpl, _ := json.Marshal(map[string]any{"nodeSelector": RealNodeSelector,
			"tolerations": []corev1.Toleration{RealNodeToleration}})
		_ = unstructured.SetNestedField(o.Object, string(tmpl), "data", "default-pod-template")
	case o.GetKind() == "ClusterInterceptor":
		path, _, _ := unstructured.NestedString(o.Object, "spec", "clientConfig", "service", "path")
		unstructured.RemoveNestedField(o.Object, "spec", "clientConfig", "service")
		_ = unstructured.SetNestedField(o.Object, fmt.Sprintf("https://127.0.0.1:%d/%s", interceptorsPort, strings.TrimPrefix(path, "/")),
			"spec", "clientConfig", "url")
	}
}

// exposeWebhook makes Tekton's webhook, on the host's port, the endpoint of Service tekton-pipelines-webhook: the
// API server reaches the Service's ClusterIP through its egress proxy into the node's namespace, where the Service
// proxy sends it to the node's address, forwarded to the host.
func (t *TektonRuntime) exposeWebhook(ctx context.Context, kube kubernetes.Interface, port int) error {
	l, err := t.c.node.Listen("tcp", net.JoinHostPort(nodeIP.String(), strconv.Itoa(nodeWebhookPort)))
	if err != nil {
		return fmt.Errorf("listen for Tekton's webhook in the node's namespace: %w", err)
	}
	f := forward(l, func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	})
	t.stops = append(t.stops, f.close)
	return endpointSlice(ctx, kube, TektonNamespace, "tekton-pipelines-webhook", "https-webhook", nodeWebhookPort)
}

// endpointSlice makes the node's address, port, the endpoint of port portName of a selectorless Service.
func endpointSlice(ctx context.Context, kube kubernetes.Interface, ns, service, portName string, port int32) error {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: service + "-node", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: "canaryline-devcluster"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{nodeIP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	_, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, s, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("EndpointSlice of Service %s/%s: %w", ns, service, err)
	}
	return nil
}

// interceptorCerts fills the core interceptors' certificate Secret (upstream leaves it to the program, which
// names only the Service): signed by the cluster's CA for the Service's names and the node's loopback, where the
// sinks reach them.
func (t *TektonRuntime) interceptorCerts(ctx context.Context, kube kubernetes.Interface, p *pki) error {
	svc := "tekton-triggers-core-interceptors"
	certPEM, keyPEM, err := p.signServing(svc, []string{svc, svc + "." + TektonNamespace, svc + "." + TektonNamespace + ".svc",
		svc + "." + TektonNamespace + ".svc.cluster.local"}, []net.IP{net.ParseIP("127.0.0.1"), nodeIP})
	if err != nil {
		return err
	}
	sec, err := kube.CoreV1().Secrets(TektonNamespace).Get(ctx, "tekton-triggers-core-interceptors-certs", metav1.GetOptions{})
	if err != nil {
		return err
	}
	sec.Data = map[string][]byte{"server-key.pem": keyPEM, "server-cert.pem": certPEM, "ca-cert.pem": p.CAData}
	_, err = kube.CoreV1().Secrets(TektonNamespace).Update(ctx, sec, metav1.UpdateOptions{})
	return err
}

// signServing makes a serving certificate signed by the cluster's CA, PEM-encoded.
func (p *pki) signServing(cn string, dns []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: now,
		NotAfter: now.Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: dns, IPAddresses: ips}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the serving certificate of %s: %w", cn, err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

// waitReady waits until the webhook admits (a Task is defaulted by it), the conversion webhook has its CA, and
// the ClusterInterceptors have theirs.
func (t *TektonRuntime) waitReady(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface) error {
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	cis := dyn.Resource(schema.GroupVersionResource{Group: "triggers.tekton.dev", Version: "v1alpha1", Resource: "clusterinterceptors"})
	var why string
	err := waitFor(ctx, "Tekton's webhook and interceptors", 2*time.Minute, nil, func(ctx context.Context) bool {
		if bad := t.exited(); bad != "" {
			why = bad
			return true
		}
		crd, err := crds.Get(ctx, "tasks.tekton.dev", metav1.GetOptions{})
		if err != nil {
			why = err.Error()
			return false
		}
		if ca, _, _ := unstructured.NestedString(crd.Object, "spec", "conversion", "webhook", "clientConfig", "caBundle"); ca == "" {
			why = "the conversion webhook of tasks.tekton.dev has no caBundle yet"
			return false
		}
		mw, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "webhook.pipeline.tekton.dev", metav1.GetOptions{})
		if err != nil || len(mw.Webhooks) == 0 || len(mw.Webhooks[0].ClientConfig.CABundle) == 0 || len(mw.Webhooks[0].Rules) == 0 {
			why = "the defaulting webhook is not configured yet"
			return false
		}
		list, err := cis.List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			why = "no ClusterInterceptors"
			return false
		}
		for _, ci := range list.Items {
			if ca, _, _ := unstructured.NestedString(ci.Object, "spec", "clientConfig", "caBundle"); ca == "" {
				why = "ClusterInterceptor " + ci.GetName() + " has no caBundle yet"
				return false
			}
		}
		why = ""
		return true
	})
	if err == nil && why != "" {
		err = errors.New(why)
	}
	if err != nil {
		return fmt.Errorf("%w (%s; logs in %s)", err, why, t.logs)
	}
	return nil
}

// exited names a Tekton program that has exited, if any.
func (t *TektonRuntime) exited() string {
	for _, p := range t.c.procs {
		if strings.HasPrefix(p.name, "tekton-") && p.exited() {
			return fmt.Sprintf("%s exited: %v; log %s", p.name, p.err, p.log)
		}
	}
	return ""
}

// StartEventListener starts the sink of EventListener ns/name, as Triggers' controller would run it in a pod:
// in the node's network namespace (it reaches the core interceptors there), with a token of the EventListener's
// ServiceAccount. It returns the sink's URL on the host's loopback. Starting it again returns the same URL.
func (t *TektonRuntime) StartEventListener(ctx context.Context, ns, name string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := ns + "/" + name
	if u, ok := t.sinks[key]; ok {
		return u, nil
	}
	kubeconfig, err := t.listenerKubeconfig(ctx, ns, name)
	if err != nil {
		return "", err
	}
	port := t.nextSink
	t.nextSink++
	if err := t.runSink(ns, name, kubeconfig, port); err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	t.stops = append(t.stops, t.c.node.Forward(l, target))
	u := "http://" + l.Addr().String()
	if err := waitFor(ctx, "EventListener "+key+"'s sink", time.Minute, nil, func(ctx context.Context) bool {
		c, err := t.c.node.Dial(ctx, "tcp", target)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return "", err
	}
	t.sinks[key] = u
	return u, nil
}

// listenerKubeconfig writes a kubeconfig for EventListener ns/name's sink, with a token of its ServiceAccount
// (default when it names none), to the node's forwarder to kube-apiserver.
func (t *TektonRuntime) listenerKubeconfig(ctx context.Context, ns, name string) (string, error) {
	cfg := t.c.restConfig(t.c.APIServerURL)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	el, err := dyn.Resource(schema.GroupVersionResource{Group: "triggers.tekton.dev", Version: "v1beta1", Resource: "eventlisteners"}).
		Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("EventListener %s/%s: %w", ns, name, err)
	}
	sa, _, _ := unstructured.NestedString(el.Object, "spec", "serviceAccountName")
	if sa == "" {
		sa = "default"
	}
	return t.accountKubeconfig(ctx, kube, ns, sa, "https://127.0.0.1:6443")
}

// runSink starts EventListener ns/name's sink in the node's network namespace, listening on port.
func (t *TektonRuntime) runSink(ns, name, kubeconfig string, port int) error {
	metrics, err := FreePorts(1)
	if err != nil {
		return err
	}
	_, err = t.run("eventlistenersink", true, []string{"SYSTEM_NAMESPACE=" + ns, "NAMESPACE=" + ns, "NAME=" + name,
		"EL_EVENT=disable", "K_SINK_TIMEOUT=30", "METRICS_PROMETHEUS_PORT=" + strconv.Itoa(metrics[0]), "PROBES_PORT=0",
		"CONFIG_LOGGING_NAME=config-logging-triggers", "CONFIG_OBSERVABILITY_NAME=config-observability-triggers",
		"METRICS_DOMAIN=tekton.dev/triggers", "HOME=" + t.c.RunDir},
		"-kubeconfig="+kubeconfig, "-el-name="+name, "-el-namespace="+ns, "-port="+strconv.Itoa(port),
		"-readtimeout=5", "-writetimeout=40", "-idletimeout=120", "-timeouthandler=30", "-is-multi-ns=false",
		"-payload-validation=true")
	return err
}

// stop closes the forwarders (the programs are the cluster's processes).
func (t *TektonRuntime) stop() {
	if t == nil {
		return
	}
	for _, s := range t.stops {
		s()
	}
	t.stops = nil
}
