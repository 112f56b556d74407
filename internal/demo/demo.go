// Package demo runs the canaryline demo: on the embedded control plane (or on the cluster of a kubeconfig) it
// builds sample-app through an OpenShift BuildConfig and deploys it, pinned by digest, as the stable version
// behind a Route. The canary release that follows joins here as its steps are built.
package demo

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	routev1 "github.com/openshift/api/route/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/canaryline/canaryline/internal/build"
	"github.com/canaryline/canaryline/internal/step"
)

// Options configure a demo run.
type Options struct {
	Config    *rest.Config // the cluster; its build API is used for the build
	Namespace string
	App       string
	Commit    string // the commit to build; the repository's HEAD when empty
	Out       io.Writer
}

// Result is what the demo produced.
type Result struct {
	Build, Image string
	Ready        int32
}

// Run builds and deploys the stable version. It is safe to run again: existing objects are updated.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	kube, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return res, err
	}
	builds, err := buildclient.NewForConfig(o.Config)
	if err != nil {
		return res, err
	}
	images, err := imageclient.NewForConfig(o.Config)
	if err != nil {
		return res, err
	}
	routes, err := routeclient.NewForConfig(o.Config)
	if err != nil {
		return res, err
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, "demo: "+format+"\n", args...) }
	if o.Commit == "" {
		o.Commit = headCommit()
	}

	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create namespace %s: %w", o.Namespace, err)
	}
	bc := &buildv1.BuildConfig{
		ObjectMeta: metav1.ObjectMeta{Name: o.App, Labels: map[string]string{"app": o.App}},
		Spec: buildv1.BuildConfigSpec{CommonSpec: buildv1.CommonSpec{
			Source: buildv1.BuildSource{Type: buildv1.BuildSourceGit, Git: &buildv1.GitBuildSource{URI: "https://github.com/canaryline/canaryline", Ref: "main"},
				ContextDir: "test/app"},
			Strategy: buildv1.BuildStrategy{Type: buildv1.SourceBuildStrategyType, SourceStrategy: &buildv1.SourceBuildStrategy{
				From: corev1.ObjectReference{Kind: "ImageStreamTag", Namespace: "openshift", Name: "golang:latest"}}},
			Output: buildv1.BuildOutput{To: &corev1.ObjectReference{Kind: "ImageStreamTag", Name: o.App + ":latest"}},
		}},
	}
	if _, err := builds.BuildV1().BuildConfigs(o.Namespace).Create(ctx, bc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create BuildConfig %s/%s: %w", o.Namespace, o.App, err)
	}
	log := step.NewLogger(o.Out, false)
	started, err := build.Start(ctx, &build.StartConfig{BuildConfig: o.App, Commit: o.Commit, CommitMessage: "demo"}, o.Namespace, builds, log)
	if err != nil {
		return res, err
	}
	res.Build = started.Build
	img, err := build.Wait(ctx, &build.WaitConfig{BuildName: started.Build, Timeout: 5 * time.Minute, CancelOnStop: true,
		FollowLogs: true}, o.Namespace, build.Clients{Build: builds, Image: images}, o.Out, log)
	if err != nil {
		return res, err
	}
	res.Image = img.URL

	labels := map[string]string{"app": o.App, "canaryline.dev/track": "stable"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: o.App, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: res.Image,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(o.Namespace).Create(ctx, dep, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		cur, err := kube.AppsV1().Deployments(o.Namespace).Get(ctx, o.App, metav1.GetOptions{})
		if err != nil {
			return res, err
		}
		cur.Spec = dep.Spec
		if _, err := kube.AppsV1().Deployments(o.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return res, fmt.Errorf("update Deployment %s/%s: %w", o.Namespace, o.App, err)
		}
	} else if err != nil {
		return res, fmt.Errorf("create Deployment %s/%s: %w", o.Namespace, o.App, err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: o.App, Labels: labels}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := kube.CoreV1().Services(o.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create Service %s/%s: %w", o.Namespace, o.App, err)
	}
	route := &routev1.Route{ObjectMeta: metav1.ObjectMeta{Name: o.App}, Spec: routev1.RouteSpec{
		To: routev1.RouteTargetReference{Kind: "Service", Name: o.App, Weight: ptr.To[int32](100)}}}
	if _, err := routes.RouteV1().Routes(o.Namespace).Create(ctx, route, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create Route %s/%s: %w", o.Namespace, o.App, err)
	}
	d, err := untilAvailable(ctx, kube, o.Namespace, o.App)
	if err != nil {
		return res, err
	}
	res.Ready = d.Status.AvailableReplicas
	say("stable %s: %d/%d pods ready, Route %s sends 100%% of traffic to Service %s", o.App, res.Ready, *d.Spec.Replicas, o.App, o.App)
	return res, nil
}

func headCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "0000000000000000000000000000000000000000"
	}
	return strings.TrimSpace(string(out))
}

func untilAvailable(ctx context.Context, k kubernetes.Interface, ns, name string) (*appsv1.Deployment, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return k.AppsV1().Deployments(ns).List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return k.AppsV1().Deployments(ns).Watch(ctx, o)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &appsv1.Deployment{}, nil, func(e watch.Event) (bool, error) {
		d, ok := e.Object.(*appsv1.Deployment)
		return ok && d.Status.ObservedGeneration >= d.Generation && d.Spec.Replicas != nil &&
			d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.AvailableReplicas == *d.Spec.Replicas, nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for Deployment %s/%s to be available: %w", ns, name, err)
	}
	return ev.Object.(*appsv1.Deployment), nil
}
