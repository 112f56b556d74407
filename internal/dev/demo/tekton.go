package demo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canaryline/canaryline/internal/tools/runner"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// prometheusService is the Service the steps' pods reach the demo's Prometheus by (prometheusPort).
const (
	prometheusService = "canaryline-demo-prometheus"
	prometheusPort    = 9090
)

// exposePrometheus makes Prometheus, listening at the node's address in the node's namespace, the endpoint of a
// selectorless Service, and returns the URL pods use: http://<service>.<namespace>.svc:9090 (the node's DNS and
// Service proxy answer it).
func exposePrometheus(ctx context.Context, kube kubernetes.Interface, ns, addr string) (string, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	port, _ := strconv.Atoi(portStr)
	labels := map[string]string{"app.kubernetes.io/name": "canaryline-demo"}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: prometheusService, Labels: labels}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "http", Port: prometheusPort, TargetPort: intstr.FromInt32(int32(port))}}}}
	if _, err := kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("Service %s/%s: %w", ns, prometheusService, err)
	}
	sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: prometheusService,
		Labels: map[string]string{discoveryv1.LabelServiceName: prometheusService, discoveryv1.LabelManagedBy: "canaryline-demo"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}}}
	if _, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("EndpointSlice %s/%s: %w", ns, prometheusService, err)
		}
		cur, err := kube.DiscoveryV1().EndpointSlices(ns).Get(ctx, prometheusService, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		sl.ResourceVersion = cur.ResourceVersion
		if _, err := kube.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", prometheusService, ns, prometheusPort), nil
}

// PipelineRun is the canary-release PipelineRun of one release as a user would write it: the Pipeline by name,
// the `canaryline` ServiceAccount, and an evidence workspace from a volumeClaimTemplate.
func PipelineRun(ns, name, pipeline string, params map[string]string) *pipelinev1.PipelineRun {
	pr := &pipelinev1.PipelineRun{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: pipelinev1.PipelineRunSpec{PipelineRef: &pipelinev1.PipelineRef{Name: pipeline},
			TaskRunTemplate: pipelinev1.PipelineTaskRunTemplate{ServiceAccountName: "canaryline"},
			Workspaces: []pipelinev1.WorkspaceBinding{{Name: "evidence", VolumeClaimTemplate: &corev1.PersistentVolumeClaim{
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}}}}}}}}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		pr.Spec.Params = append(pr.Spec.Params, pipelinev1.Param{Name: k, Value: *pipelinev1.NewStructuredValues(params[k])})
	}
	return pr
}

// runOnTekton runs one release as a PipelineRun on the Tekton controller, streaming what `tkn pipelinerun logs -f`
// shows, and returns it as canaryline run summarises its runs. The evidence the verify tasks wrote on the
// workspace's volume is copied to evidence.
func runOnTekton(ctx context.Context, o Options, c tektonrun.Clients, name string, params map[string]string, evidence string) (*runner.Summary, error) {
	pr := PipelineRun(o.Namespace, name, "canary-release", params)
	t0 := time.Now()
	done, err := tektonrun.Run(ctx, c, pr, tektonrun.Options{Out: o.Out, Abort: o.Abort})
	if done == nil {
		return nil, err
	}
	sum, serr := Summarize(ctx, c, done)
	if serr != nil {
		return nil, serr
	}
	sum.Duration = time.Since(t0)
	if dir, cerr := copyEvidence(ctx, c.Kube, done, evidence); cerr == nil && dir != "" {
		sub := evidenceSubPaths(done)
		for _, t := range sum.Tasks {
			if e := t.Results["EVIDENCE"]; e != "" {
				t.Results["EVIDENCE"] = filepath.Join(evidence, sub[t.Name], strings.TrimPrefix(e, "/workspace/evidence/"))
			}
		}
		sum.Workspaces = []runner.Workspace{{Name: "evidence", Dir: evidence}}
	} else if cerr != nil {
		fmt.Fprintf(o.Out, "demo: the evidence of %s stays on its volume: %v\n", name, cerr)
	}
	return sum, err
}

// Summarize reads a finished PipelineRun's TaskRuns as canaryline run summarises a run: each pipeline task with
// its status (Succeeded, Failed, None when skipped), reason and results, the finally tasks last.
func Summarize(ctx context.Context, c tektonrun.Clients, pr *pipelinev1.PipelineRun) (*runner.Summary, error) {
	trs, err := tektonrun.TaskRuns(ctx, c, pr)
	if err != nil {
		return nil, err
	}
	status, reason, _ := tektonrun.PipelineRunStatus(pr)
	if status == "Succeeded" && reason != "" {
		status = reason // Succeeded or Completed (some tasks skipped)
	}
	sum := &runner.Summary{Name: pr.Name, Status: status, Results: map[string]string{}}
	for _, r := range pr.Status.Results {
		sum.Results[r.Name] = r.Value.StringVal
	}
	spec := pr.Status.PipelineSpec
	if spec == nil {
		return nil, fmt.Errorf("PipelineRun %s has no resolved Pipeline in its status", pr.Name)
	}
	add := func(pts []pipelinev1.PipelineTask, finally bool) {
		for _, pt := range pts {
			t := &runner.TaskRun{Name: pt.Name, Finally: finally, Status: runner.None, Reason: "skipped", Results: map[string]string{}}
			if pt.TaskRef != nil {
				t.Task = pt.TaskRef.Name
			}
			if tr := trs[pt.Name]; tr != nil {
				t.Results = tektonrun.Results(tr)
				t.Status = runner.Succeeded
				t.Reason = ""
				if st := tektonrun.TaskRunState(tr); st != "Succeeded" {
					t.Status, t.Reason = runner.Failed, st
				}
				if tr.Status.StartTime != nil && tr.Status.CompletionTime != nil {
					t.Duration = tr.Status.CompletionTime.Sub(tr.Status.StartTime.Time)
				}
			}
			sum.Tasks = append(sum.Tasks, t)
		}
	}
	add(spec.Tasks, false)
	add(spec.Finally, true)
	return sum, nil
}

// copyEvidence copies the evidence workspace's volume (a directory of the real node, made by the cluster's
// local provisioner) to dir.
func copyEvidence(ctx context.Context, kube kubernetes.Interface, pr *pipelinev1.PipelineRun, dir string) (string, error) {
	pvcs, err := kube.CoreV1().PersistentVolumeClaims(pr.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	for _, pvc := range pvcs.Items {
		owned := false
		for _, ref := range pvc.OwnerReferences {
			owned = owned || (ref.Kind == "PipelineRun" && ref.UID == pr.UID)
		}
		if !owned || pvc.Spec.VolumeName == "" {
			continue
		}
		pv, err := kube.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if pv.Spec.HostPath == nil {
			return "", fmt.Errorf("volume %s is not a directory of the real node", pv.Name)
		}
		return dir, copyTree(pv.Spec.HostPath.Path, dir)
	}
	return "", fmt.Errorf("no volume of PipelineRun %s's workspace", pr.Name)
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// installTekton installs the Tasks and Pipelines of the checkout in the demo's namespace, as a user applies them
// (`oc apply -f tasks/ -f pipelines/`), and makes Prometheus reachable from the steps' pods. It returns the
// clients and the Prometheus URL the steps use.
func installTekton(ctx context.Context, o Options, kube kubernetes.Interface, st stack) (tektonrun.Clients, string, error) {
	rs, ok := st.(*realStack)
	if !ok || o.RealNode == nil {
		return tektonrun.Clients{}, "", fmt.Errorf("the demo on Tekton needs the real node (its steps run as pods)")
	}
	c, err := tektonrun.NewClients(o.Config)
	if err != nil {
		return c, "", err
	}
	if err := tektonrun.Install(ctx, c, o.Namespace, o.Root); err != nil {
		return c, "", fmt.Errorf("install the Tasks and Pipelines in %s: %w", o.Namespace, err)
	}
	url, err := exposePrometheus(ctx, kube, o.Namespace, rs.prom.Addr)
	if err != nil {
		return c, "", err
	}
	narrate(o.Out, "Tasks and Pipelines of %s installed in namespace %s; each release is a PipelineRun of canary-release on the "+
		"Tekton controller, its steps pods on the real node; the steps query Prometheus at %s", o.Root, o.Namespace, url)
	return c, url, nil
}

// evidenceSubPaths are the subPaths of the evidence workspace each pipeline task binds (verify-1, ...): where on
// the volume its files are.
func evidenceSubPaths(pr *pipelinev1.PipelineRun) map[string]string {
	out := map[string]string{}
	if pr.Status.PipelineSpec == nil {
		return out
	}
	for _, pt := range append(append([]pipelinev1.PipelineTask{}, pr.Status.PipelineSpec.Tasks...), pr.Status.PipelineSpec.Finally...) {
		for _, w := range pt.Workspaces {
			if w.Workspace == "evidence" {
				out[pt.Name] = w.SubPath
			}
		}
	}
	return out
}
