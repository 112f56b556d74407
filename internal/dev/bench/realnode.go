package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
)

// RealNodeOptions say what RealNodeFigures runs.
type RealNodeOptions struct {
	Root     string // the repository (the node's images are built from it)
	CacheDir string
	Starts   int // cluster starts with the real node, and as many without, interleaved (3 when 0)
	Pods     int // sample-app pods started one after another (10 when 0)
	Log      io.Writer
}

// realNodeNamespace is where the pods of the benchmark run, in a cluster the benchmark started.
const realNodeNamespace = "bench-realnode"

// idleSettle is how long the node is left alone after it is Ready (and after the last pod is Ready) before its
// memory is read.
const idleSettle = 10 * time.Second

// ColdNodeBuild is the recorded cold build of a real node's binaries: it takes minutes on 2 cores, so it is not
// measured by every benchmark run. Measured once with the control plane cached, the node cache and GOCACHE empty
// and GOMODCACHE kept: `time go run ./cmd/canaryline cluster build --real-node`.
var ColdNodeBuild = Measurement{Figure: "real node: cold build of its binaries", Value: 12*60 + 49, Unit: "s",
	Detail: "recorded 2026-12-01, not measured by this run: `time go run ./cmd/canaryline cluster build --real-node` " +
		"with the control plane cached, an empty node cache and GOCACHE, GOMODCACHE kept; 2 cores shared with other " +
		"work (load average up to 10): 12 min 49 s wall, 11.6 CPU-min, 1.6 GB RSS at most in one process. The node " +
		"build 10 min 21 s (kubelet 7 min 12 s, containerd 2 min 23 s, runc 16 s), compiling canaryline itself the rest"}

// RealNodeFigures measures a real node (kubelet, containerd, runc, CNI) on clusters of its own: the node's start
// from containerd to Node Ready and the whole cluster's start with and without it (interleaved), the start of
// sample-app pods on it to Running and to Ready, and the resident memory of kubelet and containerd idle and with
// the pods running. On a machine that cannot run a real node it returns one row saying why.
func RealNodeFigures(ctx context.Context, o RealNodeOptions) ([]Measurement, error) {
	if o.Starts <= 0 {
		o.Starts = 3
	}
	if o.Pods <= 0 {
		o.Pods = 10
	}
	if err := devcluster.CheckRealNode(); err != nil {
		return []Measurement{realNodeSkipped(err), ColdNodeBuild}, nil
	}
	// Built before anything is timed (minutes on first use).
	if _, err := devcluster.EnsureNodeBinaries(ctx, o.CacheDir, devcluster.DefaultNodeVersions, o.Log); err != nil {
		if errors.Is(err, devcluster.ErrNodeBuildDeps) {
			return []Measurement{realNodeSkipped(err), ColdNodeBuild}, nil
		}
		return nil, err
	}
	if _, err := devcluster.EnsureNodeImages(ctx, o.CacheDir, o.Root, o.Log); err != nil {
		return nil, err
	}
	var f realNodeRuns
	var c *devcluster.Cluster
	for i := range o.Starts {
		for _, real := range []bool{false, true} {
			t0 := time.Now()
			started, err := devcluster.Start(ctx, devcluster.Options{CacheDir: o.CacheDir, RepoRoot: o.Root, RealNode: real, Log: o.Log})
			if err != nil {
				return nil, fmt.Errorf("cluster start %d (real node %t): %w", i+1, real, err)
			}
			took := time.Since(t0)
			if !real {
				f.without = append(f.without, took)
				started.Stop()
				continue
			}
			f.with = append(f.with, took)
			f.node = append(f.node, started.Node().StartTimes())
			if i < o.Starts-1 {
				started.Stop()
				continue
			}
			c = started // the last one runs the pods
		}
	}
	defer c.Stop()
	if err := f.runPods(ctx, c, o.Pods); err != nil {
		return nil, err
	}
	return append(f.measurements(), ColdNodeBuild), nil
}

func realNodeSkipped(why error) Measurement {
	return Measurement{Figure: "real node", Skipped: true, Detail: "skipped: " + why.Error()}
}

// realNodeRuns is what RealNodeFigures measured.
type realNodeRuns struct {
	with, without  []time.Duration // whole cluster starts
	node           []devcluster.NodeStartTimes
	running, ready []time.Duration // pods, from create
	idle, busy     map[string]programRSS
}

// runPods measures the node's memory idle, then starts the pods one after another, then measures its memory
// with them running.
func (f *realNodeRuns) runPods(ctx context.Context, c *devcluster.Cluster, n int) error {
	cgroups := c.Node().Record().Cgroups
	if err := sleep(ctx, idleSettle); err != nil {
		return err
	}
	var err error
	if f.idle, err = nodeRSS(cgroups); err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	if err := createNamespace(ctx, kube, realNodeNamespace); err != nil {
		return err
	}
	image := c.Node().Pinned(devcluster.SampleAppImage)
	for i := range n {
		running, ready, err := startPod(ctx, kube, realNodePod(fmt.Sprintf("app-%d", i), image))
		if err != nil {
			return err
		}
		f.running, f.ready = append(f.running, running), append(f.ready, ready)
	}
	if err := sleep(ctx, idleSettle); err != nil {
		return err
	}
	f.busy, err = nodeRSS(cgroups)
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// createNamespace creates ns and waits for its default ServiceAccount (pods cannot be created before).
func createNamespace(ctx context.Context, kube kubernetes.Interface, ns string) error {
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: no default ServiceAccount after 30s: %w", ns, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// realNodePod is a sample-app pod on the real node, Ready once its HTTP readiness probe (every second) passes.
func realNodePod(name, image string) *corev1.Pod {
	grace := int64(2)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: realNodeNamespace, Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{
			NodeSelector: devcluster.RealNodeSelector, Tolerations: []corev1.Toleration{devcluster.RealNodeToleration},
			Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
					HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}}},
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

// podStartTimeout bounds one pod's start: one that is not Ready by then is stuck.
const podStartTimeout = 2 * time.Minute

// startPod creates pod and returns the time from just before the create to the pod seen Running, and to it seen
// Ready, through a watch opened before the create.
func startPod(ctx context.Context, kube kubernetes.Interface, pod *corev1.Pod) (running, ready time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, podStartTimeout)
	defer cancel()
	pods := kube.CoreV1().Pods(pod.Namespace)
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()})
	if err != nil {
		return 0, 0, fmt.Errorf("watch pod %s: %w", pod.Name, err)
	}
	defer w.Stop()
	t0 := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, 0, fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	var last *corev1.Pod
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		last = p
		if running == 0 && p.Status.Phase == corev1.PodRunning {
			running = time.Since(t0)
		}
		if running > 0 && podReady(p) {
			return running, time.Since(t0), nil
		}
	}
	status := "none seen"
	if last != nil {
		status = fmt.Sprintf("%+v", last.Status)
	}
	return 0, 0, fmt.Errorf("pod %s: not Ready within %s (%v); last status: %s", pod.Name, podStartTimeout, ctx.Err(), status)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// programRSS is the resident memory of one program's processes: their VmRSS summed, in bytes, and how many.
type programRSS struct {
	Bytes int64
	Procs int
}

// processRSS is one process: its program (the base name of its executable) and its VmRSS in bytes.
type processRSS struct {
	Program string
	Bytes   int64
}

// nodeRSS is the resident memory of the processes in the node's cgroup subtrees, by program.
func nodeRSS(cgroups []string) (map[string]programRSS, error) {
	var procs []processRSS
	for _, pid := range cgroupProcs(cgroups) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // it has exited
		}
		rss, ok := vmRSS(status)
		if !ok {
			continue // a kernel thread, or a zombie
		}
		procs = append(procs, processRSS{Program: programOf(pid, status), Bytes: rss})
	}
	if len(procs) == 0 {
		return nil, fmt.Errorf("no processes in the node's cgroups %s", strings.Join(cgroups, ", "))
	}
	return byProgram(procs), nil
}

// cgroupProcs are the processes of the cgroup subtrees (each once).
func cgroupProcs(roots []string) []int {
	var out []int
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// programOf is the base name of pid's executable; its Name from status (at most 15 characters) when the link
// cannot be read.
func programOf(pid int, status []byte) string {
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	name, _ := statusField(status, "Name")
	return name
}

// vmRSS is the VmRSS of a /proc/PID/status, in bytes; false when it has none.
func vmRSS(status []byte) (int64, bool) {
	v, ok := statusField(status, "VmRSS")
	if !ok {
		return 0, false
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	if err != nil {
		return 0, false
	}
	return kb * 1024, true
}

// statusField is a field's value in /proc/PID/status ("Name:\tvalue"), trimmed.
func statusField(status []byte, name string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// byProgram sums the processes' memory by program.
func byProgram(procs []processRSS) map[string]programRSS {
	out := map[string]programRSS{}
	for _, p := range procs {
		r := out[p.Program]
		r.Bytes += p.Bytes
		r.Procs++
		out[p.Program] = r
	}
	return out
}

// rssPrograms are the node's programs whose memory is reported.
var rssPrograms = []string{"kubelet", "containerd", "containerd-shim-runc-v2"}

// measurements are the figures of the runs: medians, with every run in the detail.
func (f *realNodeRuns) measurements() []Measurement {
	var ready, ctrd, images []time.Duration
	for _, t := range f.node {
		ready, ctrd, images = append(ready, t.Ready), append(ctrd, t.Containerd), append(images, t.Images)
	}
	with, without := median(f.with), median(f.without)
	n := len(f.with)
	out := []Measurement{
		{Figure: "real node start: containerd to Node Ready", Value: median(ready).Seconds(), Unit: "s",
			Detail: fmt.Sprintf("median of %d cluster starts: %s; containerd's socket at %.2f s, images imported at %.2f s (medians)",
				n, durations2(ready), median(ctrd).Seconds(), median(images).Seconds())},
		{Figure: "cluster start with the real node", Value: with.Seconds(), Unit: "s",
			Detail: fmt.Sprintf("median of %d: %s, interleaved with the starts without; %+.2f s over without", n, durations2(f.with), (with - without).Seconds())},
		{Figure: "cluster start without the real node", Value: without.Seconds(), Unit: "s",
			Detail: fmt.Sprintf("median of %d: %s; 2 KWOK nodes, binaries cached", len(f.without), durations2(f.without))},
	}
	pods := len(f.running)
	for _, p := range []struct {
		what string
		ds   []time.Duration
	}{{"Running", f.running}, {"Ready (HTTP readiness probe every 1 s)", f.ready}} {
		out = append(out, Measurement{Figure: "real node pod start: create to " + p.what, Value: median(p.ds).Seconds(), Unit: "s",
			Detail: fmt.Sprintf("median of %d sample-app pods started one after another, as seen by a watch (min %.2f, max %.2f s)",
				len(p.ds), slices.Min(p.ds).Seconds(), slices.Max(p.ds).Seconds())})
	}
	for _, s := range []struct {
		when string
		rss  map[string]programRSS
	}{{"idle", f.idle}, {fmt.Sprintf("%d pods", pods), f.busy}} {
		for _, prog := range rssPrograms {
			r, ok := s.rss[prog]
			if !ok {
				continue // no shims without pods
			}
			detail := fmt.Sprintf("VmRSS, %s after ", idleSettle)
			if s.when == "idle" {
				detail += "Node Ready, no pods"
			} else {
				detail += "the last pod Ready"
			}
			if r.Procs > 1 {
				detail += fmt.Sprintf("; %d processes summed", r.Procs)
			}
			out = append(out, Measurement{Figure: fmt.Sprintf("real node RSS, %s: %s", s.when, prog), Value: megabytes(r.Bytes), Unit: "MB", Detail: detail})
		}
	}
	return out
}

// durations2 formats ds in seconds, two decimals.
func durations2(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(parts, ", ") + " s"
}
