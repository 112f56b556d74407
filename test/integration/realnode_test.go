package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/runtime/steps"
	"github.com/canaryline/canaryline/internal/tools/image"
)

// realPod is a pod for the real node running image with command (the image's own when nil).
func realPod(name, image string, command ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeSelector: devcluster.RealNodeSelector, Tolerations: []corev1.Toleration{devcluster.RealNodeToleration},
			Containers:    []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Command: command}},
			RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr(int64(2)),
		},
	}
}

// createPod creates pod in ns and waits until cond holds for it.
func createPod(t *testing.T, k kubernetes.Interface, ns string, pod *corev1.Pod, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if _, err := k.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return untilPod(t, k, ns, pod.Name, what, cond)
}

// untilPod polls (test code) until the pod satisfies cond, at most two minutes.
func untilPod(t *testing.T, k kubernetes.Interface, ns, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p, err := k.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if cond(p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s: not %s after 2m; status %+v", ns, name, what, last.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podDone(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func logsOf(t *testing.T, k kubernetes.Interface, ns, name string) string {
	t.Helper()
	data, err := k.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, name, err)
	}
	return string(data)
}

// TestRealNodeRunsAPodWithLogsAndExec: a pod of the sample-app image runs on the real node, becomes Ready through
// its HTTP readiness probe, and its logs and exec come through the API server (authenticated to the kubelet).
func TestRealNodeRunsAPodWithLogsAndExec(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	k, ns := kube(t), devclustertest.Namespace(t, cluster)
	pod := realPod("app", devcluster.SampleAppImage)
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	p := createPod(t, k, ns, pod, "Ready", podReady)
	if p.Spec.NodeName != devcluster.RealNodeName || !strings.HasPrefix(p.Status.PodIP, "10.88.") {
		t.Errorf("pod on node %q with IP %q; want the real node and a bridge address", p.Spec.NodeName, p.Status.PodIP)
	}
	if logs := logsOf(t, k, ns, "app"); !strings.Contains(logs, "listening on") {
		t.Errorf("logs: %q", logs)
	}
	out, err := execIn(ns, "app", "main", "/usr/local/bin/sample-app", "cat", "/etc/hostname")
	if err != nil || strings.TrimSpace(out) != "app" {
		t.Errorf("exec: %q, %v; want the pod's hostname", out, err)
	}
}

// execIn runs command in a container through the API server and returns its output.
func execIn(ns, pod, container string, command ...string) (string, error) {
	k := kubernetes.NewForConfigOrDie(cluster.Config())
	req := k.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cluster.Config(), "POST", req.URL())
	if err != nil {
		return "", err
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.String() + errOut.String(), err
}

// TestRealNodeTerminationMessageAndDownwardAPI: what Tekton's TaskRun pods rely on: a container's termination
// message file comes back in the pod's status, and a downward API file shows an annotation and follows a change.
func TestRealNodeTerminationMessageAndDownwardAPI(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	k, ns := kube(t), devclustertest.Namespace(t, cluster)
	done := realPod("done", devcluster.SampleAppImage, "/usr/local/bin/sample-app", "write", "/tekton/termination", `[{"key":"VERDICT","value":"healthy"}]`)
	done.Spec.Containers[0].TerminationMessagePath = "/tekton/termination"
	done.Spec.Volumes = []corev1.Volume{{Name: "tekton", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	done.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "tekton", MountPath: "/tekton"}}
	p := createPod(t, k, ns, done, "done", podDone)
	if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Terminated == nil ||
		p.Status.ContainerStatuses[0].State.Terminated.Message != `[{"key":"VERDICT","value":"healthy"}]` {
		t.Errorf("termination message: %+v", p.Status.ContainerStatuses)
	}

	watch := realPod("downward", devcluster.SampleAppImage)
	watch.Spec.RestartPolicy = corev1.RestartPolicyAlways
	watch.Annotations = map[string]string{"tekton.dev/ready": ""}
	watch.Spec.Volumes = []corev1.Volume{{Name: "downward", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		Items: []corev1.DownwardAPIVolumeFile{{Path: "ready", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['tekton.dev/ready']"}}}}}}}
	watch.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "downward", MountPath: "/tekton/downward"}}
	createPod(t, k, ns, watch, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	ctx := context.Background()
	cur, _ := k.CoreV1().Pods(ns).Get(ctx, "downward", metav1.GetOptions{})
	cur.Annotations["tekton.dev/ready"] = "READY"
	if _, err := k.CoreV1().Pods(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "the downward API file to follow the annotation", func() bool {
		out, err := execIn(ns, "downward", "main", "/usr/local/bin/sample-app", "cat", "/tekton/downward/ready")
		return err == nil && out == "READY"
	})
}

// TestRealNodeNetworkStaysOnTheMachine: a pod reaches the kubernetes Service (by address and by name, through the
// cluster's DNS) and another pod; an address outside the machine is "network is unreachable" at once (no route
// leads out), and a name outside the cluster does not resolve (the DNS forwards nothing). The host's IP
// forwarding is as it was.
func TestRealNodeNetworkStaysOnTheMachine(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	forwarding, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	k, ns := kube(t), devclustertest.Namespace(t, cluster)
	srv := realPod("server", devcluster.SampleAppImage)
	srv.Spec.RestartPolicy = corev1.RestartPolicyAlways
	p := createPod(t, k, ns, srv, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" })
	svc, err := k.CoreV1().Services("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	outside := "192.0.2.10:80" // TEST-NET-1: never routed, and no packet leaves (there is no route)
	dialer := realPod("dialer", devcluster.SampleAppImage, "/usr/local/bin/sample-app", "dial",
		svc.Spec.ClusterIP+":443", p.Status.PodIP+":8080", outside, "kubernetes.default:443", "example.com:80")
	createPod(t, k, ns, dialer, "done", podDone)
	logs := logsOf(t, k, ns, "dialer")
	for _, want := range []string{svc.Spec.ClusterIP + ":443: ok", p.Status.PodIP + ":8080: ok", outside + ": dial tcp " + outside + ": connect: network is unreachable",
		"kubernetes.default:443: ok", "example.com:80: dial tcp: lookup example.com", "no such host"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the pod's dials:\n%s\nwant %q", logs, want)
		}
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); !bytes.Equal(now, forwarding) {
		t.Errorf("the host's net.ipv4.ip_forward changed: %q -> %q", forwarding, now)
	}
}

// TestRealNodeImageNotImportedIsImagePullBackOff: an image the node does not have and cannot pull ends in
// ImagePullBackOff naming the image, never a hang.
func TestRealNodeImageNotImportedIsImagePullBackOff(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	k, ns := kube(t), devclustertest.Namespace(t, cluster)
	image := devcluster.NodeRegistry + "/not-imported:v1"
	p := createPod(t, k, ns, realPod("missing", image), "ImagePullBackOff", func(p *corev1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "ImagePullBackOff" {
				return true
			}
		}
		return false
	})
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, image) {
		t.Errorf("the waiting message does not name the image: %q", msg)
	}
}

// TestRealNodeCrashLoopAndOOMCaughtByVerifyHealth: a canary whose container exits at once (CrashLoopBackOff) and
// one that is OOM-killed over its memory limit are both found unhealthy by verify-health's pods check, from the
// real container states.
func TestRealNodeCrashLoopAndOOMCaughtByVerifyHealth(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	for _, tc := range []struct {
		name, reason string
		command      []string
		limit        string
	}{
		{"crash loop", "CrashLoopBackOff", []string{"/usr/local/bin/sample-app", "-error-rate", "2"}, ""},
		{"out of memory", "OOMKilled", []string{"/usr/local/bin/sample-app", "eat", "256"}, "64Mi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newApp(t, "route", 1)
			ctx := context.Background()
			d := deployment("shop-canary", 1)
			d.Labels["canaryline.dev/track"] = "canary"
			d.Spec.Template.Spec.NodeSelector = devcluster.RealNodeSelector
			d.Spec.Template.Spec.Tolerations = []corev1.Toleration{devcluster.RealNodeToleration}
			c := &d.Spec.Template.Spec.Containers[0]
			c.Image, c.Command, c.ImagePullPolicy = devcluster.SampleAppImage, tc.command, corev1.PullIfNotPresent
			if tc.limit != "" {
				c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(tc.limit)}
			}
			if _, err := a.kube.AppsV1().Deployments(a.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 2*time.Minute, "the canary's container to show "+tc.reason, func() bool {
				pods, _ := a.kube.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shop-canary"})
				for _, p := range pods.Items {
					for _, cs := range p.Status.ContainerStatuses {
						if (cs.State.Waiting != nil && cs.State.Waiting.Reason == tc.reason) ||
							(cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.Reason == tc.reason) {
							return true
						}
					}
				}
				return false
			})
			v := runStep(t, "verify-health", a.kubeconfig, map[string]string{"APP": "shop", "INTERVAL": "1s", "COUNT": "5"})
			if v.code != 4 || !strings.Contains(v.results["REASON"], tc.reason) {
				t.Errorf("verify-health: exit %d, reason %q; want 4 naming %s", v.code, v.results["REASON"], tc.reason)
			}
		})
	}
}

// TestRealNodePullsFromARegistry: an image pushed to the node's registry (an OCI registry inside the node's
// namespace, standing in for OpenShift's internal one) is pulled by the node over HTTP, by the registry's own
// address and by OpenShift's internal registry host, pinned by digest, and runs.
func TestRealNodePullsFromARegistry(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	node := cluster.Node()
	img, err := tarball.ImageFromPath(node.Images().SampleApp.Tarball, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, ns := kube(t), devclustertest.Namespace(t, cluster)
	for _, host := range []string{node.RegistryAddr(), devcluster.OpenShiftRegistry} {
		ref, err := node.Push(context.Background(), img, host, ns+"/sample-app", "pulled")
		if err != nil {
			t.Fatal(err)
		}
		name := "pulled-" + strconv.Itoa(len(host))
		pod := realPod(name, ref, "/usr/local/bin/sample-app", "cat", "/etc/hostname")
		pod.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
		p := createPod(t, k, ns, pod, "done", podDone)
		if p.Status.Phase != corev1.PodSucceeded || strings.TrimSpace(logsOf(t, k, ns, name)) != name {
			t.Errorf("pod %s (%s): %s; logs %q", name, ref, p.Status.Phase, logsOf(t, k, ns, name))
		}
		for _, cs := range p.Status.ContainerStatuses {
			if !strings.Contains(cs.ImageID, "@sha256:") {
				t.Errorf("image id %q", cs.ImageID)
			}
		}
	}
}

// TestMultiArchIndexPulledByDigestOnTheRealNode: the step image index built from this tree (the four platforms, as
// `make image` builds what the catalog pins) is pushed to the node's registry, and a pod of the index pinned by
// digest, as the catalog's Tasks name it, runs on the real node: containerd picks the linux/amd64 image out of the
// index, and its binary lists the steps.
func TestMultiArchIndexPulledByDigestOnTheRealNode(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(t.TempDir(), "oci")
	rep, err := image.BuildIndex(t.Context(), image.Options{RepoRoot: root, Version: "dev", LayoutDir: layoutDir})
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := image.LayoutIndex(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	k, ns := kube(t), devclustertest.Namespace(t, cluster)
	ref, err := cluster.Node().Push(t.Context(), idx, devcluster.OpenShiftRegistry, ns+"/canaryline-steps", "v0.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(ref, "@"+rep.Digest.String()) {
		t.Fatalf("pushed %s, want it pinned by the index digest %s", ref, rep.Digest)
	}
	pod := realPod("steps-from-index", ref, image.EntrypointPath, "--list")
	pod.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	p := createPod(t, k, ns, pod, "done", podDone)
	logs := logsOf(t, k, ns, pod.Name)
	if p.Status.Phase != corev1.PodSucceeded || !slices.Equal(strings.Fields(logs), steps.Names()) {
		t.Errorf("pod of %s: %s; logs %q, want the steps %v", ref, p.Status.Phase, logs, steps.Names())
	}
	for _, cs := range p.Status.ContainerStatuses {
		t.Logf("ran %s as image %s (id %s)", ref, cs.Image, cs.ImageID)
		if !strings.Contains(cs.ImageID, rep.Digest.String()) {
			t.Errorf("container image id %q, want the index digest %s the pod named", cs.ImageID, rep.Digest)
		}
	}
}

// stepPod runs one canaryline step as a pod of the step image on the real node, as a TaskRun's step runs: the
// canaryline ServiceAccount (in-cluster config through the kubernetes Service), a restricted-v2-like security
// context (an arbitrary non-root UID with group 0, no privilege escalation, no capabilities, a read-only root
// file system), and env for the params.
func stepPod(name, step string, env map[string]string) *corev1.Pod {
	p := realPod(name, stepImage(), "/usr/local/bin/"+step)
	p.Spec.ServiceAccountName = "canaryline"
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(1000680000)),
		RunAsGroup: ptr(int64(0)), FSGroup: ptr(int64(1000680000)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	c := &p.Spec.Containers[0]
	c.SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	c.Env = []corev1.EnvVar{{Name: "RESULTS_DIR", Value: "/tekton/results"}}
	for k, v := range env {
		c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
	}
	p.Spec.Volumes = []corev1.Volume{{Name: "results", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "results", MountPath: "/tekton/results"}}
	return p
}

func stepImage() string { return cluster.Node().Images().Steps.Name }

// exitCode is the pod's container's exit code (-1 while it runs).
func exitCode(p *corev1.Pod) int {
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return int(t.ExitCode)
		}
	}
	return -1
}

// TestRealNodeStepsRunAsPods: a whole release, start-build through promote-or-rollback, with every step a pod of
// the step image on the real node, using in-cluster config and the canaryline ServiceAccount bound to the shipped
// Role, under a restricted-v2-like security context.
func TestRealNodeStepsRunAsPods(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	a := appWithBuildConfig(t, 2)
	ctx := context.Background()
	if _, err := a.kube.CoreV1().ServiceAccounts(a.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "canaryline"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.kube.RbacV1().RoleBindings(a.ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "canaryline"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: shippedRole(t).Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "canaryline"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(name, step string, env map[string]string) {
		t.Helper()
		p := createPod(t, a.kube, a.ns, stepPod(name, step, env), "done", podDone)
		logs := logsOf(t, a.kube, a.ns, name)
		t.Logf("%s (%s): exit %d\n%s", step, name, exitCode(p), logs)
		if exitCode(p) != 0 {
			t.Fatalf("%s: exit %d", step, exitCode(p))
		}
	}
	run("start-build", "start-build", map[string]string{"BUILD_CONFIG": "shop", "COMMIT": commitA, "PIPELINE_RUN": "shop-release-1"})
	run("wait-build", "wait-build", map[string]string{"BUILD_NAME": "shop-1"})
	b, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().Builds(a.ns).Get(context.Background(), "shop-1", metav1.GetOptions{})
	if err != nil || b.Status.Output.To == nil {
		t.Fatalf("build shop-1: %v", err)
	}
	image := strings.Split(b.Status.OutputDockerImageReference, ":")[0] + "@" + b.Status.Output.To.ImageDigest
	release := map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1"}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range release {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	run("shift", "shift-canary", with(map[string]string{"IMAGE": image, "WEIGHT": "50", "READY_TIMEOUT": "60s"}))
	run("verify", "verify-health", with(map[string]string{"INTERVAL": "1s", "COUNT": "2"}))
	run("promote", "promote-or-rollback", with(map[string]string{"DECISION": "promote"}))
	d, _ := a.kube.AppsV1().Deployments(a.ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Errorf("stable image %s; want the built %s", got, image)
	}
}

// TestRealNodeNeedsRoot: without root, `canaryline cluster up --real-node` refuses at once, naming what is
// missing, and starts nothing.
func TestRealNodeNeedsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("runs the command as another user: needs root")
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	for _, p := range []string{filepath.Dir(filepath.Dir(bin)), filepath.Dir(bin), dir} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "cluster", "up", "--real-node", "--dir", filepath.Join(dir, "c"))
	cmd.Env = []string{"HOME=" + dir, "CANARYLINE_CACHE_DIR=" + filepath.Join(dir, "cache"), "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "the real node needs root") {
		t.Errorf("as uid 65532: %v\n%s\nwant exit 2 saying the real node needs root", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "c", "cluster.json")); err == nil {
		t.Error("a cluster started")
	}
}

// TestRealNodeLeavesNothingBehind: a cluster with a real node killed with SIGKILL (its pods running) leaves
// processes, cgroups and its network namespace; the next start removes all of them, by the record the node wrote
// before it made them.
func TestRealNodeLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	bin := buildCLI(t)
	cacheDir, err := devcluster.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	up := exec.Command(bin, "cluster", "up", "--real-node", "--dir", filepath.Join(dir, "first"))
	up.Dir = "../.."
	up.Env = append(os.Environ(), "CANARYLINE_CACHE_DIR="+cacheDir)
	up.Stderr = io.Discard
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer up.Process.Kill()
	rec := waitRecord(t, cacheDir, up.Process.Pid)
	k := kubernetes.NewForConfigOrDie(attachConfig(t, filepath.Join(dir, "first")))
	createPod(t, k, "default", realPod("left", devcluster.SampleAppImage), "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	pids := cgroupPids(rec.Cgroups)
	if len(pids) < 4 { // at least the supervisor, containerd, kubelet, a shim, the pod's processes
		t.Fatalf("the node runs %d processes: %v", len(pids), pids)
	}
	if err := up.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = up.Wait()

	next := exec.Command(bin, "cluster", "up", "--dir", filepath.Join(dir, "next"))
	next.Dir = "../.."
	next.Env = up.Env
	var log bytes.Buffer
	next.Stderr = &log
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Process.Signal(syscall.SIGTERM); _ = next.Wait() }()
	waitUntil(t, 2*time.Minute, "the next cluster", func() bool { _, err := os.Stat(filepath.Join(dir, "next", "cluster.json")); return err == nil })
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d of the killed node still runs", pid)
		}
	}
	for _, cg := range rec.Cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s is left", cg)
		}
	}
	if _, err := os.Stat(rec.NetNS); err == nil {
		t.Errorf("the network namespace %s is left", rec.NetNS)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(rec.NetNS)) {
		t.Errorf("the network namespace %s is still mounted", rec.NetNS)
	}
	if !strings.Contains(log.String(), "removing what a real node of process") {
		t.Errorf("the next start did not say what it removed:\n%s", log.String())
	}
}

// waitRecord waits until the process pid's real node is recorded and its cluster is up, and returns the record.
func waitRecord(t *testing.T, cacheDir string, pid int) devcluster.NodeRecord {
	t.Helper()
	var rec devcluster.NodeRecord
	waitUntil(t, 3*time.Minute, "the real node of process "+strconv.Itoa(pid), func() bool {
		for _, r := range devcluster.RunningNodes(cacheDir) {
			if r.Owner == pid {
				rec = r
				_, err := os.Stat(filepath.Join(filepath.Dir(r.Dir), "cluster.json"))
				return err == nil
			}
		}
		return false
	})
	return rec
}

func attachConfig(t *testing.T, dir string) *rest.Config {
	t.Helper()
	c, err := devcluster.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.Config()
}

// cgroupPids are the processes in the cgroup subtrees.
func cgroupPids(roots []string) []int {
	seen := map[int]bool{}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	var out []int
	for pid := range seen {
		out = append(out, pid)
	}
	return out
}

// newRealApp is newApp (Route router) with the stable version running as real pods of the sample app: pinned by
// digest, Ready through an HTTP readiness probe.
func newRealApp(t *testing.T, replicas int32) *app {
	t.Helper()
	devclustertest.RequireRealNode(t, cluster)
	a := &app{t: t, ns: devclustertest.Namespace(t, cluster), kind: "route", kube: kubernetes.NewForConfigOrDie(cluster.Config()),
		dyn: dynamic.NewForConfigOrDie(cluster.Config()), routes: routeclient.NewForConfigOrDie(cluster.Config())}
	ctx := context.Background()
	d := deployment("shop", replicas)
	spec := &d.Spec.Template.Spec
	spec.NodeSelector, spec.Tolerations = devcluster.RealNodeSelector, []corev1.Toleration{devcluster.RealNodeToleration}
	spec.TerminationGracePeriodSeconds = ptr(int64(2))
	c := &spec.Containers[0]
	c.Image, c.ImagePullPolicy = cluster.Node().Pinned(devcluster.SampleAppImage), corev1.PullIfNotPresent
	c.ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	if _, err := a.kube.AppsV1().Deployments(a.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"},
		Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := a.kube.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rt := newRoute("shop", 100)
	rt.Spec.To.Name = "shop"
	if _, err := a.routes.RouteV1().Routes(a.ns).Create(ctx, rt, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	untilDeploymentAvailable(ctx, t, a.kube, a.ns, "shop")
	a.kubeconfig = stepsKubeconfig(t, a.ns, nil)
	return a
}

// TestRealNodeReadinessGatesTheCanary: a canary whose pods run but never pass their readiness probe (here the
// pause image: nothing listens) gets no traffic: shift-canary waits READY_TIMEOUT and exits 1, and the Route is
// as it was. A canary of the same image as stable becomes Ready for real and gets its weight.
func TestRealNodeReadinessGatesTheCanary(t *testing.T) {
	t.Parallel()
	a := newRealApp(t, 2)
	before := a.routerState()
	pause := cluster.Node().Pinned(devcluster.PauseImage)
	r := a.shift(10, map[string]string{"IMAGE": pause, "READY_TIMEOUT": "8s"})
	if r.code != 1 || !strings.Contains(r.stderr, "no traffic was moved") {
		t.Errorf("shift to a canary that is never Ready: exit %d; want 1, no traffic moved", r.code)
	}
	if got := a.routerState(); got != before {
		t.Errorf("the Route changed although the canary never became Ready:\n%s", got)
	}
	pods := ownedPods(t, a.kube, a.ns, "shop-canary")
	if len(pods) == 0 {
		t.Error("no canary pod")
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || podReady(&p) {
			t.Errorf("canary pod %s: %s, ready %v; want Running and not Ready", p.Name, p.Status.Phase, podReady(&p))
		}
	}
	if d := a.decide(map[string]string{"DECISION": "rollback"}); d.code != 0 {
		t.Fatalf("rollback: exit %d", d.code)
	}
	good := cluster.Node().Pinned(devcluster.SampleAppImage)
	if r := a.shift(10, map[string]string{"IMAGE": good, "RELEASE_ID": "shop-release-2"}); r.code != 0 || r.results["CANARY_WEIGHT"] != "10" {
		t.Errorf("shift to a canary that becomes Ready: exit %d, %v", r.code, r.results)
	}
}

// TestRealNodeClusterDownLeavesNothing: `canaryline cluster down` of a cluster with a real node (a pod running on
// it) removes every process, cgroup, the network namespace and the node's record and directory.
func TestRealNodeClusterDownLeavesNothing(t *testing.T) {
	t.Parallel()
	devclustertest.RequireRealNode(t, cluster)
	bin := buildCLI(t)
	cacheDir, err := devcluster.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "c")
	up := exec.Command(bin, "cluster", "up", "--real-node", "--detach", "--dir", dir)
	up.Dir, up.Env = "../..", append(os.Environ(), "CANARYLINE_CACHE_DIR="+cacheDir)
	if out, err := up.CombinedOutput(); err != nil {
		t.Fatalf("cluster up --real-node --detach: %v\n%s", err, out)
	}
	st, err := devcluster.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rec devcluster.NodeRecord
	for _, r := range devcluster.RunningNodes(cacheDir) {
		if filepath.Dir(r.Dir) == dir {
			rec = r
		}
	}
	if rec.NetNS == "" {
		t.Fatal("no record of the cluster's real node")
	}
	k := kubernetes.NewForConfigOrDie(st.Config())
	createPod(t, k, "default", realPod("left", devcluster.SampleAppImage), "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	pids := cgroupPids(rec.Cgroups)
	down := exec.Command(bin, "cluster", "down", "--dir", dir)
	down.Env = up.Env
	if out, err := down.CombinedOutput(); err != nil {
		t.Fatalf("cluster down: %v\n%s", err, out)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d of the node still runs", pid)
		}
	}
	for _, left := range append(append([]string{}, rec.Cgroups...), rec.NetNS, rec.Dir) {
		if _, err := os.Stat(left); err == nil {
			t.Errorf("%s is left", left)
		}
	}
	for _, r := range devcluster.RunningNodes(cacheDir) {
		if r.Dir == rec.Dir {
			t.Error("the node's record is left")
		}
	}
}
