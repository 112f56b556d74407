package health

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/canaryline/canaryline/internal/runtime/evidence"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// podsCheck: the canary Deployment is available, its containers restart no more than allowed, and none is
// crash-looping, failing to pull its image, or OOM-killed. Those fail the analysis at once.
type podsCheck struct {
	kube        kubeclient.Interface
	ns, name    string
	maxRestarts int32
	// selector is the canary Deployment's (immutable in apps/v1) and its pods' hash, read once.
	selector string
	// first is the Deployment read just before the analysis, used for the first measurement when that is taken at
	// once; every later measurement reads the Deployment's status again (availability changes, it is evidence).
	first *appsv1.Deployment
}

// newPodsCheck checks the pods of the canary Deployment: those of its selector and, when hash is known, of its
// current pod-template-hash (its selector is the stable's: the hash tells its pods from the stable's).
func newPodsCheck(kube kubeclient.Interface, ns string, canary *appsv1.Deployment, hash string, maxRestarts int32) (*podsCheck, error) {
	sel, err := metav1.LabelSelectorAsSelector(canary.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("the selector of Deployment %s/%s: %w", ns, canary.Name, err)
	}
	if hash != "" {
		req, err := labels.NewRequirement(naming.PodTemplateHashLabel, selection.Equals, []string{hash})
		if err != nil {
			return nil, fmt.Errorf("the pod-template-hash of Deployment %s/%s: %w", ns, canary.Name, err)
		}
		sel = sel.Add(*req)
	}
	return &podsCheck{kube: kube, ns: ns, name: canary.Name, maxRestarts: maxRestarts, selector: sel.String()}, nil
}

var (
	_ Check = (*podsCheck)(nil)
	_ Fatal = (*podsCheck)(nil)
)

var fatalReasons = map[string]bool{"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true,
	"OOMKilled": true, "CreateContainerConfigError": true, "InvalidImageName": true}

func (p *podsCheck) Name() string  { return "pods" }
func (p *podsCheck) Kind() string  { return "pods" }
func (p *podsCheck) Query() string { return "Deployment " + p.ns + "/" + p.name }
func (p *podsCheck) Threshold() string {
	return fmt.Sprintf("available, restarts <= %d, no CrashLoopBackOff/ImagePullBackOff/OOMKilled", p.maxRestarts)
}

func (p *podsCheck) Fatal(m evidence.Measurement) bool {
	return m.Status == evidence.Fail && strings.HasPrefix(m.Detail, "fatal:")
}

func (p *podsCheck) Measure(ctx context.Context, now time.Time) (evidence.Measurement, error) {
	m := measurement(p, now)
	m.Query = p.Query()
	d := p.first
	p.first = nil
	if d == nil {
		var err error
		if d, err = p.kube.AppsV1().Deployments(p.ns).Get(ctx, p.name, metav1.GetOptions{}); err != nil {
			return m, fmt.Errorf("get Deployment %s/%s: %w", p.ns, p.name, err)
		}
	}
	pods, err := p.kube.CoreV1().Pods(p.ns).List(ctx, metav1.ListOptions{LabelSelector: p.selector})
	if err != nil {
		return m, fmt.Errorf("list pods of Deployment %s/%s: %w", p.ns, p.name, err)
	}
	var restarts int32
	var fatal []string
	for _, pod := range pods.Items {
		for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
			restarts += cs.RestartCount
			if w := cs.State.Waiting; w != nil && fatalReasons[w.Reason] {
				fatal = append(fatal, fmt.Sprintf("pod %s container %s: %s", pod.Name, cs.Name, w.Reason))
			}
			if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" {
				fatal = append(fatal, fmt.Sprintf("pod %s container %s: OOMKilled", pod.Name, cs.Name))
			}
			if t := cs.State.Terminated; t != nil && t.Reason == "OOMKilled" {
				fatal = append(fatal, fmt.Sprintf("pod %s container %s: OOMKilled", pod.Name, cs.Name))
			}
		}
	}
	sort.Strings(fatal)
	m.Value = float64(restarts)
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	m.Text = fmt.Sprintf("%d/%d available, %d restarts", d.Status.AvailableReplicas, want, restarts)
	switch {
	case len(fatal) > 0:
		m.Status, m.Detail = evidence.Fail, "fatal: "+strings.Join(fatal, "; ")
	case restarts > p.maxRestarts:
		m.Status, m.Detail = evidence.Fail, fmt.Sprintf("fatal: %d container restarts, more than %d", restarts, p.maxRestarts)
	case !available(d):
		m.Status, m.Detail = evidence.Fail, "the canary Deployment is not available"
	default:
		m.Status = evidence.Pass
	}
	return m, nil
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas > 0
		}
	}
	return false
}
