// Package demo runs canaryline's main job on a cluster (the embedded local control plane by default): sample-app
// v1 runs as the stable version behind a Route; two releases then go through the canary-release Pipeline with
// `canaryline run`: a healthy v2, which is promoted, and a faulty v3, which verify-health catches and the finally
// task rolls back. Real sample-app processes serve the stable and canary versions, a real Prometheus scrapes them,
// and a router simulator (no OpenShift router runs locally) sends them load in the Route's proportions. With the
// embedded control plane's real node (Options.RealNode), the versions are real images the builds report, run as
// the Deployments' pods on the node, and Prometheus discovers those pods from the API server.
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	routev1 "github.com/openshift/api/route/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	routev1client "github.com/openshift/client-go/route/clientset/versioned/typed/route/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/tools/runner"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// Options configure the demo.
type Options struct {
	Config    *rest.Config // the cluster, as an admin
	Namespace string
	App       string
	Root      string // the repository: tasks/ and pipelines/
	Steps     string // the canaryline-steps binary
	CacheDir  string // for a Prometheus built from the module proxy
	Evidence  string // where the releases' evidence, reports and charts go
	Interval  time.Duration
	Count     int
	Out       io.Writer
	Abort     <-chan struct{}  // closed: force the running release to end (runner.Options.Abort)
	Progress  *runner.Progress // kept current with the running release (runner.Options.Progress)
	// RealNode, when set (the embedded control plane's real node), runs the demo on it: each version is an image
	// pushed to the node's registry, which the release's build reports, and the stable and canary versions run as
	// pods on the node; else processes stand for the pods.
	RealNode *devcluster.RealNode
	// Tekton (with RealNode, on a cluster started with devcluster.Options.Tekton) runs each release as a
	// PipelineRun on the Tekton controller, its steps as pods on the real node, instead of with canaryline run.
	Tekton bool
}

// Release is how one release went.
type Release struct {
	Version, Image, Status, Decision, Verdict, Reason, Report string
	// DecidedBy is the verify task whose verdict stands (verify-1 analyses the first weight), and Weight the
	// canary's weight then, in percent: where a bad release was caught.
	DecidedBy, Weight string
	// Tasks are the Pipeline's tasks by name, with their status (runner.Succeeded, Failed, or None: not run).
	Tasks map[string]string
}

// A version of sample-app: what its process does.
type version struct {
	name      string
	errorRate float64
	latency   time.Duration
}

var (
	v1     = version{"v1", 0.005, 0}
	stages = []version{{"v2", 0.005, 0}, {"v3", 0.3, 80 * time.Millisecond}}
)

// errorsCompare compares the canary's 500s among its requests with the stable's, as counts: verify-health's
// sequential test reads the counters every interval and judges their increase, with one error budget for the
// whole release. Each side's series are those of its current pod-template-hash: the canary is a new release's
// pods, and nothing of the releases before it.
const errorsCompare = "- name: errors-vs-stable\n" +
	"  errors: 'sum(http_requests_total{namespace=\"{{.Namespace}}\",pod_template_hash=\"{{.Hash}}\",code=\"500\"})'\n" +
	"  requests: 'sum(http_requests_total{namespace=\"{{.Namespace}}\",pod_template_hash=\"{{.Hash}}\"})'\n"

// Run runs the demo and returns the two releases.
func Run(ctx context.Context, o Options) ([]Release, error) {
	say := func(format string, args ...any) { narrate(o.Out, format, args...) }
	// A new canary's process is discovered by Prometheus within about 10 s, and judged once it has served 30
	// requests (6 s at 10%): the analysis of each weight lasts 24 s.
	if o.Interval == 0 {
		o.Interval = 2 * time.Second
	}
	if o.Count == 0 {
		o.Count = 12
	}
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	if err := checkOpenShiftAPIs(kube); err != nil {
		return nil, err
	}
	if err := Setup(ctx, o, kube); err != nil {
		return nil, err
	}
	d := &demoRun{o: o}
	if d.kubeconfig, err = StepsKubeconfig(ctx, o, kube); err != nil {
		return nil, err
	}
	say("sample-app %s is the stable version of %s/%s, behind Route %s", v1.name, o.Namespace, o.App, o.App)

	routes, err := routeclient.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	if d.stack, err = startStack(ctx, o, kube, routes.RouteV1()); err != nil {
		return nil, err
	}
	defer d.stack.Stop()

	d.promURL = d.stack.prometheusURL()
	if o.Tekton {
		if d.tk, d.promURL, err = installTekton(ctx, o, kube, d.stack); err != nil {
			return nil, err
		}
	}
	var releases []Release
	for _, v := range stages {
		r, done, err := d.release(ctx, v)
		if done {
			return releases, err
		}
		releases = append(releases, r)
		if ctx.Err() != nil { // interrupted: no further release starts
			return releases, fmt.Errorf("interrupted during release %s (decision %q): no further release starts", v.name, r.Decision)
		}
	}
	return releases, nil
}

// checkOpenShiftAPIs checks, before anything is created, that the cluster serves OpenShift's build and route
// APIs: the demo builds each version with its BuildConfig (the embedded control plane serves them).
func checkOpenShiftAPIs(kube kubernetes.Interface) error {
	for _, gv := range []string{"build.openshift.io/v1", "route.openshift.io/v1"} {
		if _, err := kube.Discovery().ServerResourcesForGroupVersion(gv); err != nil {
			return fmt.Errorf("the demo needs the %s API, which this cluster does not serve (%v): run it on OpenShift or on "+
				"the embedded control plane (canaryline demo without --kubeconfig); elsewhere, release an image built by "+
				"another CI with canaryline run pipelines/canary-release-prebuilt.yaml", gv, err)
		}
	}
	return nil
}

// demoRun is what the demo's releases share: the options, the steps' kubeconfig, the stack serving the versions,
// Prometheus' address and, on Tekton, its clients.
type demoRun struct {
	o          Options
	kubeconfig string
	stack      stack
	promURL    string
	tk         tektonrun.Clients
}

// release releases version v with the canary-release Pipeline, with canaryline run or on Tekton, and says how it
// went. done is true when the release could not run (err says why).
func (d *demoRun) release(ctx context.Context, v version) (r Release, done bool, err error) {
	o := d.o
	if err := d.stack.prepare(ctx, v); err != nil {
		return r, true, err
	}
	sum := sha256.Sum256([]byte(v.name))
	commit := hex.EncodeToString(sum[:])[:40]
	narrate(o.Out, "release %s: commit %s (error rate %.1f%%, added latency %s)", v.name, commit[:12], 100*v.errorRate, v.latency)
	params := map[string]string{"app": o.App, "namespace": o.Namespace, "git-revision": commit, "git-message": "sample-app " + v.name,
		"interval": o.Interval.String(), "count": fmt.Sprint(o.Count), "prometheus-url": d.promURL,
		// About 10 canary requests an interval at the first weight: a 30% canary is caught there, at 10%,
		// within a few intervals; a 0.5% one is promoted.
		"compare":       errorsCompare,
		"ready-timeout": "1m"}
	var s *runner.Summary
	var runErr error
	if o.Tekton {
		s, runErr = runOnTekton(ctx, o, d.tk, runName(o.App, v.name), params, filepath.Join(o.Evidence, v.name))
	} else {
		s, runErr = runner.Run(ctx, runner.Options{
			Pipeline: filepath.Join(o.Root, "pipelines", "canary-release.yaml"), TasksDir: filepath.Join(o.Root, "tasks"),
			Steps: o.Steps, Env: []string{"KUBECONFIG=" + d.kubeconfig, "PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()},
			Namespace: o.Namespace, Workspace: filepath.Join(o.Evidence, v.name), RunName: runName(o.App, v.name), Out: o.Out,
			Params: params, Abort: o.Abort, Progress: o.Progress,
		})
	}
	if s == nil {
		return r, true, runErr
	}
	r = release(v.name, s)
	fmt.Fprint(o.Out, "\n"+s.Table()+"\n")
	if r.Decision == "promote" {
		d.stack.promoted(v)
	}
	narrate(o.Out, "release %s: %s; verdict %s from %s at %s%% canary weight (%s); evidence %s", v.name, r.Decision, r.Verdict,
		r.DecidedBy, r.Weight, r.Reason, r.Report)
	return r, false, nil
}

// stack serves the stable and canary versions, has a real Prometheus scrape them, and sends them load.
type stack interface {
	// prepare readies release v: what its canary pods serve.
	prepare(ctx context.Context, v version) error
	// promoted is called once v is the stable version.
	promoted(v version)
	prometheusURL() string
	Stop()
}

// startStack starts the real node's stack with Options.RealNode, else processes standing for the pods.
func startStack(ctx context.Context, o Options, kube kubernetes.Interface, routes routev1client.RouteV1Interface) (stack, error) {
	if o.RealNode != nil {
		s, err := startRealStack(ctx, o, kube, routes)
		if err != nil {
			return nil, err
		}
		narrate(o.Out, "sample-app runs as pods of Deployments %s and %s-canary on the real node %s (readiness: GET /healthz)",
			o.App, o.App, devcluster.RealNodeName)
		narrate(o.Out, "Prometheus %s runs in the real node's network namespace: it discovers the pods from the API server "+
			"(role pod; labels track, pod_template_hash, pod, namespace, app) and scrapes them at their pod IPs", s.prom.URL)
		narrate(o.Out, "router simulator: 50 requests/s split by Route %s's weights, each to its Service's ClusterIP, where the node's "+
			"Service proxy picks a ready pod (it stands in for the OpenShift router)", o.App)
		return s, nil
	}
	// Real processes for the stable and canary versions, a real Prometheus, and the router simulator.
	s, err := StartStack(ctx, StackOptions{Kube: kube, Routes: routes, Namespace: o.Namespace, App: o.App,
		Stable:   sampleapp.Config{Version: v1.name, ErrorRate: v1.errorRate, Latency: v1.latency, Seed: 1},
		Canary:   sampleapp.Config{Version: v1.name, ErrorRate: v1.errorRate, Latency: v1.latency, Seed: 2},
		CacheDir: o.CacheDir, Scrape: time.Second, Rate: 50, Log: o.Out})
	if err != nil {
		return nil, err
	}
	narrate(o.Out, "Prometheus %s scrapes a process per pod template, labelled pod_template_hash and pod as OpenShift's monitoring "+
		"labels pods: the stable's (%s), and a fresh one for each canary ReplicaSet", s.Prometheus.URL, s.StableAddr)
	narrate(o.Out, "router simulator: 50 requests/s split by Route %s's weights (it stands in for the OpenShift router)", o.App)
	return processStack{s}, nil
}

// processStack is the Stack of processes as a stack.
type processStack struct{ *Stack }

func (p processStack) prepare(_ context.Context, v version) error {
	p.SetCanary(sampleapp.Config{Version: v.name, ErrorRate: v.errorRate, Latency: v.latency, Seed: 2})
	return nil
}

// promoted: the stable process now serves what was promoted.
func (p processStack) promoted(v version) {
	_ = p.Stable.SetVersion(v.name)
	_ = p.Stable.SetErrorRate(v.errorRate)
	_ = p.Stable.SetLatency(v.latency)
}

func (p processStack) prometheusURL() string { return p.Prometheus.URL }

// release reads how a release went from its run: the decision, the verdict that stands and where it was given.
func release(version string, s *runner.Summary) Release {
	r := Release{Version: version, Image: s.Results["image-url"], Status: s.Status, Tasks: map[string]string{}}
	weight := ""
	for _, tr := range s.Tasks { // in the order they ran
		r.Tasks[tr.Name] = tr.Status
		if tr.Finally {
			r.Decision = tr.Results["DECISION"]
			continue
		}
		if w := tr.Results["CANARY_WEIGHT"]; w != "" && tr.Task == "shift-canary" {
			weight = w
		}
		if vv := tr.Results["VERDICT"]; vv != "" {
			r.Verdict, r.Reason, r.Report = vv, tr.Results["REASON"], tr.Results["EVIDENCE"]
			r.DecidedBy, r.Weight = tr.Name, weight
		}
	}
	return r
}

// EvidenceEntries are what the demo writes in Options.Evidence: a directory per release and the steps' kubeconfig.
func EvidenceEntries() []string {
	out := []string{"steps.kubeconfig"}
	for _, v := range stages {
		out = append(out, v.name)
	}
	return out
}

// runName is a release's PipelineRun name, unique as Tekton's generateName makes it: a demo run again on the same
// namespace makes new releases.
func runName(app, version string) string {
	return app + "-release-" + version + "-" + rand.String(5)
}

// Setup creates the application as `oc new-app` and `oc expose` would, and canaryline's Role and ServiceAccount.
func Setup(ctx context.Context, o Options, kube kubernetes.Interface) error {
	ns := o.Namespace
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	if err := createBuildConfig(ctx, o); err != nil {
		return err
	}
	if err := createStable(ctx, o, kube); err != nil {
		return err
	}
	if err := createRoute(ctx, o); err != nil {
		return err
	}
	if err := applyTaskRBAC(ctx, o, kube); err != nil {
		return err
	}
	return waitStable(ctx, o, kube)
}

// createBuildConfig creates the application's BuildConfig (S2I from internal/dev/app), its builds scripted to log fast.
func createBuildConfig(ctx context.Context, o Options) error {
	builds, err := buildclient.NewForConfig(o.Config)
	if err != nil {
		return err
	}
	bc := &buildv1.BuildConfig{
		ObjectMeta: metav1.ObjectMeta{Name: o.App, Labels: map[string]string{"app": o.App},
			Annotations: map[string]string{"buildsim.canaryline.dev/line-interval": "10ms"}},
		Spec: buildv1.BuildConfigSpec{CommonSpec: buildv1.CommonSpec{
			Source: buildv1.BuildSource{Type: buildv1.BuildSourceGit, Git: &buildv1.GitBuildSource{URI: "https://github.com/canaryline/canaryline"}, ContextDir: "internal/dev/app"},
			Strategy: buildv1.BuildStrategy{Type: buildv1.SourceBuildStrategyType, SourceStrategy: &buildv1.SourceBuildStrategy{
				From: corev1.ObjectReference{Kind: "ImageStreamTag", Namespace: "openshift", Name: "golang:1.26"}}},
			Output: buildv1.BuildOutput{To: &corev1.ObjectReference{Kind: "ImageStreamTag", Name: o.App + ":latest"}},
		}},
	}
	if _, err := builds.BuildV1().BuildConfigs(o.Namespace).Create(ctx, bc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create BuildConfig %s/%s: %w", o.Namespace, o.App, err)
	}
	return nil
}

// createStable creates the stable version v1: its Deployment (on the real node, a real image pushed to its
// registry) and its Service.
func createStable(ctx context.Context, o Options, kube kubernetes.Interface) (err error) {
	ns := o.Namespace
	sum := sha256.Sum256([]byte(v1.name))
	image := "image-registry.openshift-image-registry.svc:5000/" + ns + "/" + o.App + "@sha256:" + hex.EncodeToString(sum[:])
	if o.RealNode != nil { // v1 is a real image in the node's registry, as a build would have pushed it
		if image, err = pushVersion(ctx, o, v1); err != nil {
			return err
		}
	}
	labels := map[string]string{"app": o.App}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: o.App, Labels: labels}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}}}
	if o.RealNode != nil {
		onRealNode(&dep.Spec.Template.Spec)
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Deployment %s/%s: %w", ns, o.App, err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: o.App, Labels: labels}, Spec: corev1.ServiceSpec{Selector: labels,
		Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Service %s/%s: %w", ns, o.App, err)
	}
	return nil
}

// createRoute exposes the application's Service with a Route, all the weight on it.
func createRoute(ctx context.Context, o Options) error {
	routes, err := routeclient.NewForConfig(o.Config)
	if err != nil {
		return err
	}
	route := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: o.App}, Spec: routev1.RouteSpec{Host: o.App + ".apps.example.com",
		To: routev1.RouteTargetReference{Kind: "Service", Name: o.App, Weight: ptr.To[int32](100)}}}
	if _, err := routes.RouteV1().Routes(o.Namespace).Create(ctx, route, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Route %s/%s: %w", o.Namespace, o.App, err)
	}
	return nil
}

// applyTaskRBAC applies canaryline's Role, ServiceAccount and RoleBinding, as `oc apply -k .` installs them.
func applyTaskRBAC(ctx context.Context, o Options, kube kubernetes.Interface) error {
	for _, f := range []string{"role.yaml", "serviceaccount.yaml"} {
		data, err := os.ReadFile(filepath.Join(o.Root, "tasks", f))
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
		for {
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				if err == io.EOF {
					break
				}
				return fmt.Errorf("read tasks/%s: %w", f, err)
			}
			if err := applyRBAC(ctx, kube, o.Namespace, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitStable waits for the stable version: real pods pull their image and pass their readiness probe, in a few
// seconds.
func waitStable(ctx context.Context, o Options, kube kubernetes.Interface) error {
	ns, labels := o.Namespace, map[string]string{"app": o.App}
	wait := ctx
	if o.RealNode != nil {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
	}
	for {
		d, err := kube.AppsV1().Deployments(ns).Get(wait, o.App, metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas == 3 && d.Status.UpdatedReplicas == 3 {
			return nil
		}
		select {
		case <-wait.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the stable Deployment %s/%s is not available on the real node after 3 minutes: %s", ns, o.App, podStates(ctx, kube, ns, labels))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// podStates says how the pods selected by labels are: phase, readiness, and why a container waits.
func podStates(ctx context.Context, kube kubernetes.Interface, ns string, labels map[string]string) string {
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: labels})})
	if err != nil {
		return err.Error()
	}
	if len(pods.Items) == 0 {
		return "no pods"
	}
	var out []string
	for _, p := range pods.Items {
		st := p.Name + " " + string(p.Status.Phase)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				st += ", Ready " + string(c.Status)
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				st += ", " + cs.Name + " " + w.Reason + ": " + w.Message
			}
		}
		out = append(out, st)
	}
	return strings.Join(out, "; ")
}

func applyRBAC(ctx context.Context, kube kubernetes.Interface, ns string, raw map[string]any) error {
	data, _ := json.Marshal(raw)
	var err error
	switch raw["kind"] {
	case "Role":
		obj := &rbacv1.Role{}
		if err = json.Unmarshal(data, obj); err == nil {
			_, err = kube.RbacV1().Roles(ns).Create(ctx, obj, metav1.CreateOptions{})
		}
	case "RoleBinding":
		obj := &rbacv1.RoleBinding{}
		if err = json.Unmarshal(data, obj); err == nil {
			for i := range obj.Subjects {
				obj.Subjects[i].Namespace = ns
			}
			_, err = kube.RbacV1().RoleBindings(ns).Create(ctx, obj, metav1.CreateOptions{})
		}
	case "ServiceAccount":
		obj := &corev1.ServiceAccount{}
		if err = json.Unmarshal(data, obj); err == nil {
			_, err = kube.CoreV1().ServiceAccounts(ns).Create(ctx, obj, metav1.CreateOptions{})
		}
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %v: %w", raw["kind"], err)
	}
	return nil
}

// StepsKubeconfig is a kubeconfig with a token of the `canaryline` ServiceAccount: the steps run with exactly
// the shipped Role, as in a PipelineRun.
func StepsKubeconfig(ctx context.Context, o Options, kube kubernetes.Interface) (string, error) {
	tr, err := kube.CoreV1().ServiceAccounts(o.Namespace).CreateToken(ctx, "canaryline",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](7200)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("mint a token for ServiceAccount canaryline: %w", err)
	}
	ca := o.Config.CAData
	if len(ca) == 0 && o.Config.CAFile != "" {
		if ca, err = os.ReadFile(o.Config.CAFile); err != nil {
			return "", err
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: o.Config.Host, CertificateAuthorityData: ca, InsecureSkipTLSVerify: o.Config.Insecure}
	cfg.AuthInfos["canaryline"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "canaryline", Namespace: o.Namespace}
	cfg.CurrentContext = "c"
	if err := os.MkdirAll(o.Evidence, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(o.Evidence, "steps.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}
