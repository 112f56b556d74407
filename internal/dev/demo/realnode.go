package demo

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	v1img "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	routev1client "github.com/openshift/client-go/route/clientset/versioned/typed/route/v1"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/promserver"
)

// nodeAPIServer is where the API server is reached from inside the real node's network namespace (a forwarder
// listens there, as for the kubelet).
const nodeAPIServer = "https://127.0.0.1:6443"

// prometheusAccount is the ServiceAccount (and Role, RoleBinding) Prometheus lists and watches the pods with.
const prometheusAccount = "canaryline-demo-prometheus"

// versionImage is sample-app's image (as imported into the real node) made into version v's: its environment sets
// the version, error rate and latency the program reads.
func versionImage(node *devcluster.RealNode, v version) (v1img.Image, error) {
	base, err := tarball.ImageFromPath(node.Images().SampleApp.Tarball, nil)
	if err != nil {
		return nil, fmt.Errorf("read the sample-app image %s: %w", node.Images().SampleApp.Tarball, err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := *cf.Config.DeepCopy()
	env := map[string]string{"SAMPLE_APP_VERSION": v.name, "SAMPLE_APP_ERROR_RATE": strconv.FormatFloat(v.errorRate, 'f', -1, 64),
		"SAMPLE_APP_LATENCY": v.latency.String()}
	kept := cfg.Env[:0:0]
	for _, kv := range cfg.Env {
		if k, _, _ := strings.Cut(kv, "="); env[k] == "" {
			kept = append(kept, kv)
		}
	}
	for _, k := range []string{"SAMPLE_APP_VERSION", "SAMPLE_APP_ERROR_RATE", "SAMPLE_APP_LATENCY"} {
		kept = append(kept, k+"="+env[k])
	}
	cfg.Env = kept
	return mutate.Config(base, cfg)
}

// pushVersion pushes version v's image to the real node's registry as OpenShift's internal registry's
// <namespace>/<app>:<version>, where a build of the application's BuildConfig pushes, and returns its reference
// pinned by digest.
func pushVersion(ctx context.Context, o Options, v version) (string, error) {
	img, err := versionImage(o.RealNode, v)
	if err != nil {
		return "", err
	}
	return o.RealNode.Push(ctx, img, devcluster.OpenShiftRegistry, o.Namespace+"/"+o.App, v.name)
}

// onRealNode puts a pod template's pods on the real node, Ready once sample-app answers /healthz.
func onRealNode(spec *corev1.PodSpec) {
	spec.NodeSelector = maps.Clone(devcluster.RealNodeSelector)
	spec.Tolerations = []corev1.Toleration{devcluster.RealNodeToleration}
	spec.TerminationGracePeriodSeconds = ptr.To[int64](5)
	for i := range spec.Containers {
		spec.Containers[i].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(devcluster.SampleAppPort)}}}
	}
}

// realStack is what a release is judged on with the real node. The stable and canary versions are pods of their
// Deployments on the node, from images the demo pushes to the node's registry. Prometheus runs in the node's
// network namespace, finds the pods from the API server (Kubernetes service discovery, role pod) and scrapes them
// at their pod IPs; the steps reach it through a host loopback port forwarded into the namespace. The router
// simulator sends each request to its Service's ClusterIP, where the node's Service proxy picks a ready pod.
type realStack struct {
	o        Options
	kube     kubernetes.Interface
	builds   buildclient.Interface
	prom     *promserver.Server
	dir      string
	services corelisters.ServiceLister
	factory  informers.SharedInformerFactory
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// startRealStack starts Prometheus in the node's namespace, waits until it scrapes the stable pods, and starts the
// load.
func startRealStack(ctx context.Context, o Options, kube kubernetes.Interface, routes routev1client.RouteV1Interface) (_ *realStack, err error) {
	builds, err := buildclient.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	s := &realStack{o: o, kube: kube, builds: builds, cancel: cancel}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if s.dir, err = os.MkdirTemp("", "canaryline-demo-prometheus-"); err != nil {
		return nil, err
	}
	if err := s.startPrometheus(ctx); err != nil {
		return nil, err
	}
	s.factory = informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(o.Namespace))
	svcs := s.factory.Core().V1().Services()
	s.services = svcs.Lister()
	svcs.Informer()
	s.factory.Start(runCtx.Done())
	for typ, ok := range s.factory.WaitForCacheSync(runCtx.Done()) {
		if !ok {
			return nil, fmt.Errorf("list and watch %v in namespace %s: %v", typ, o.Namespace, ctx.Err())
		}
	}
	sim := &RouterSimulator{Routes: routes, NS: o.Namespace, Name: o.App, Rate: 50, Backends: s.backend, Dial: o.RealNode.Dial}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); sim.Run(runCtx) }()
	return s, nil
}

// startPrometheus gives Prometheus a ServiceAccount that may list and watch the namespace's pods, and starts it in
// the node's namespace with that account's token and the cluster's CA.
func (s *realStack) startPrometheus(ctx context.Context) error {
	o := s.o
	token, err := s.prometheusToken(ctx)
	if err != nil {
		return err
	}
	ca := o.Config.CAData
	if len(ca) == 0 && o.Config.CAFile != "" {
		if ca, err = os.ReadFile(o.Config.CAFile); err != nil {
			return err
		}
	}
	tokenFile, caFile := filepath.Join(s.dir, "token"), filepath.Join(s.dir, "ca.crt")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		return err
	}
	bin, err := promserver.KubernetesBinary(ctx, o.CacheDir, o.Out)
	if err != nil {
		return err
	}
	if s.prom, err = promserver.Start(ctx, promserver.Options{Binary: bin, Dir: filepath.Join(s.dir, "prometheus"), Scrape: time.Second,
		Network: o.RealNode, Host: s.listenHost(), Log: o.Out, Kubernetes: map[string]promserver.Kubernetes{job: {APIServer: nodeAPIServer,
			Namespaces: []string{o.Namespace}, TokenFile: tokenFile, CAFile: caFile, Relabel: podRelabel(o.App)}}}); err != nil {
		return err
	}
	return s.waitScraped(ctx, "stable", 3)
}

// podRelabel makes the targets of the application's pods (their port 8080, while Running) carry the labels
// OpenShift's monitoring gives pods: track (canaryline.dev/track, stable when absent), pod_template_hash, pod,
// namespace and app.
func podRelabel(app string) []promserver.Relabel {
	return []promserver.Relabel{
		{SourceLabels: []string{"__meta_kubernetes_pod_label_app"}, Regex: regexp.QuoteMeta(app), Action: "keep"},
		{SourceLabels: []string{"__meta_kubernetes_pod_container_port_number"}, Regex: strconv.Itoa(devcluster.SampleAppPort), Action: "keep"},
		{SourceLabels: []string{"__meta_kubernetes_pod_phase"}, Regex: "Running", Action: "keep"},
		{TargetLabel: "track", Replacement: "stable"},
		{SourceLabels: []string{"__meta_kubernetes_pod_label_canaryline_dev_track"}, Regex: "(.+)", TargetLabel: "track"},
		{SourceLabels: []string{"__meta_kubernetes_pod_label_pod_template_hash"}, TargetLabel: "pod_template_hash"},
		{SourceLabels: []string{"__meta_kubernetes_pod_name"}, TargetLabel: "pod"},
		{SourceLabels: []string{"__meta_kubernetes_namespace"}, TargetLabel: "namespace"},
		{SourceLabels: []string{"__meta_kubernetes_pod_label_app"}, TargetLabel: "app"},
	}
}

// prometheusToken makes Prometheus's ServiceAccount, a Role to get, list and watch pods and its RoleBinding, and
// returns a token of the account.
func (s *realStack) prometheusToken(ctx context.Context) (string, error) {
	ns, name := s.o.Namespace, prometheusAccount
	meta := metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": s.o.App}}
	objs := []func() error{
		func() error {
			_, err := s.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := s.kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := s.kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta,
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}}}, metav1.CreateOptions{})
			return err
		},
	}
	for _, create := range objs {
		if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("Prometheus's access to the pods of namespace %s: %w", ns, err)
		}
	}
	tr, err := s.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](7200)}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("mint a token for ServiceAccount %s: %w", name, err)
	}
	return tr.Status.Token, nil
}

// waitScraped waits until Prometheus has scraped n pods of track, up, or says which it has after a minute.
func (s *realStack) waitScraped(ctx context.Context, track string, n int) error {
	q := fmt.Sprintf(`up{job=%q,namespace=%q,app=%q,track=%q} == 1`, job, s.o.Namespace, s.o.App, track)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var got []string
	for {
		v, err := s.prom.Query(ctx, q)
		if vec, ok := v.(model.Vector); err == nil && ok {
			got = got[:0]
			for _, smp := range vec {
				got = append(got, string(smp.Metric["pod"]))
			}
			if len(got) >= n {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Prometheus (%s, log %s) scrapes %d %s pods of %s/%s after a minute (%s); want %d: %v", s.prom.URL,
				s.prom.LogPath, len(got), track, s.o.Namespace, s.o.App, strings.Join(got, ", "), n, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// backend is a Service's ClusterIP and port, for the router simulator: the node's Service proxy answers there.
func (s *realStack) backend(service string) string {
	svc, err := s.services.Services(s.o.Namespace).Get(service)
	if err != nil || svc.DeletionTimestamp != nil || net.ParseIP(svc.Spec.ClusterIP) == nil || len(svc.Spec.Ports) == 0 {
		return ""
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(svc.Spec.Ports[0].Port)))
}

// prepare makes release v's build produce v's image: the image is pushed to the node's registry, and the
// BuildConfig's build simulator annotation makes its next build report that digest.
func (s *realStack) prepare(ctx context.Context, v version) error {
	ref, err := pushVersion(ctx, s.o, v)
	if err != nil {
		return err
	}
	_, digest, _ := strings.Cut(ref, "@")
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		bc, err := s.builds.BuildV1().BuildConfigs(s.o.Namespace).Get(ctx, s.o.App, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if bc.Annotations == nil {
			bc.Annotations = map[string]string{}
		}
		bc.Annotations[devcluster.SimDigest] = digest
		_, err = s.builds.BuildV1().BuildConfigs(s.o.Namespace).Update(ctx, bc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("BuildConfig %s/%s: report the digest of %s: %w", s.o.Namespace, s.o.App, ref, err)
	}
	narrate(s.o.Out, "release %s: image %s pushed to the real node's registry; the build of BuildConfig %s reports it", v.name, ref, s.o.App)
	return nil
}

// promoted: the stable Deployment's own rollout runs v's image; nothing to do.
func (s *realStack) promoted(version) {}

func (s *realStack) prometheusURL() string { return s.prom.URL }

// listenHost is where Prometheus listens in the node's namespace: at the node's address when the steps run as
// pods (on Tekton), else on its loopback.
func (s *realStack) listenHost() string {
	if s.o.Tekton {
		return s.o.RealNode.IP()
	}
	return ""
}

// Stop stops the load, Prometheus and the forwarded port, and removes Prometheus's files.
func (s *realStack) Stop() {
	s.cancel()
	s.wg.Wait()
	if s.factory != nil {
		s.factory.Shutdown()
	}
	if s.prom != nil {
		s.prom.Stop()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// narrate prints one line of the demo's narration.
func narrate(w io.Writer, format string, args ...any) { fmt.Fprintf(w, "demo: "+format+"\n", args...) }
