package demo

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/canaryline/canaryline/internal/runtime/naming"
)

const (
	revisionAnnotation = naming.RevisionAnnotation
	podTemplateHash    = naming.PodTemplateHashLabel
)

// identity is who a process of the demo is, as Prometheus's Kubernetes discovery labels a real pod: the
// pod-template-hash of its Deployment's current ReplicaSet, and the name of one pod of that ReplicaSet.
type identity struct{ hash, pod string }

func (i identity) complete() bool { return i.hash != "" && i.pod != "" }

// pods follows a namespace's Deployments, ReplicaSets and pods with informers (list, then watch) and pokes
// changed, coalesced, after every change.
type pods struct {
	ns          string
	factory     informers.SharedInformerFactory
	deployments appslisters.DeploymentLister
	replicaSets appslisters.ReplicaSetLister
	pods        corelisters.PodLister
	changed     chan struct{}
}

// followPods starts the informers and returns once their caches hold the namespace; they stop when ctx ends.
func followPods(ctx context.Context, kube kubernetes.Interface, ns string) (*pods, error) {
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns))
	p := &pods{ns: ns, factory: f, changed: make(chan struct{}, 1)}
	poke := func() {
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() }}
	d, rs, po := f.Apps().V1().Deployments(), f.Apps().V1().ReplicaSets(), f.Core().V1().Pods()
	for _, inf := range []cache.SharedIndexInformer{d.Informer(), rs.Informer(), po.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	p.deployments, p.replicaSets, p.pods = d.Lister(), rs.Lister(), po.Lister()
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			f.Shutdown()
			return nil, fmt.Errorf("list and watch %v in namespace %s: %v", typ, ns, ctx.Err())
		}
	}
	return p, nil
}

// stop waits for the informers, once the context given to followPods has ended.
func (p *pods) stop() { p.factory.Shutdown() }

// identity is Deployment name's current identity, zero when the Deployment or its current ReplicaSet is not
// there. The pod is prev's while that pod is still one of the ReplicaSet's, so a process is not relabelled for
// nothing; else the first by name; empty while the ReplicaSet has none.
func (p *pods) identity(name string, prev identity) identity {
	d, err := p.deployments.Deployments(p.ns).Get(name)
	if err != nil || d.DeletionTimestamp != nil {
		return identity{}
	}
	rs := p.currentReplicaSet(d)
	if rs == nil || rs.Labels[podTemplateHash] == "" {
		return identity{}
	}
	id := identity{hash: rs.Labels[podTemplateHash]}
	list, _ := p.pods.Pods(p.ns).List(labels.SelectorFromSet(labels.Set{podTemplateHash: id.hash}))
	var names []string
	for _, pod := range list {
		if pod.DeletionTimestamp != nil || !metav1.IsControlledBy(pod, rs) {
			continue
		}
		if prev.hash == id.hash && pod.Name == prev.pod {
			return prev
		}
		names = append(names, pod.Name)
	}
	if len(names) > 0 {
		sort.Strings(names)
		id.pod = names[0]
	}
	return id
}

// currentReplicaSet is the ReplicaSet that d owns at its revision (as verify-health finds {{.CanaryHash}}).
func (p *pods) currentReplicaSet(d *appsv1.Deployment) *appsv1.ReplicaSet {
	rev := d.Annotations[revisionAnnotation]
	if rev == "" {
		return nil
	}
	list, _ := p.replicaSets.ReplicaSets(p.ns).List(labels.Everything())
	for _, rs := range list {
		if rs.Annotations[revisionAnnotation] == rev && metav1.IsControlledBy(rs, d) {
			return rs
		}
	}
	return nil
}
