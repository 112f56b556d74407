package devcluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// The dev cluster's stand-in for OpenShift's default roles. On OpenShift, a project admin (ClusterRole admin bound
// in the namespace) also manages Routes, BuildConfigs, Builds and ImageStreams, because OpenShift aggregates its own
// API groups into admin, edit and view. kube-apiserver knows nothing of those groups, so without these ClusterRoles
// a project admin here could not create canaryline's Role, which RBAC allows only to someone who holds every
// permission in it. The labels are Kubernetes' aggregation labels; the names say where they come from.
//
// The other routers' APIs (the Gateway API's HTTPRoutes, Istio's VirtualServices) are not aggregated: whether a
// project admin holds them depends on how a cluster installed them, and here, as on an OpenShift cluster that does
// not grant them to admin, a project admin does not. Ingress is in Kubernetes' own admin and edit roles.

var (
	readVerbs  = []string{"get", "list", "watch"}
	writeVerbs = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

func aggregateLabels(roles ...string) map[string]string {
	l := map[string]string{"app.kubernetes.io/part-of": "canaryline-devcluster"}
	for _, r := range roles {
		l["rbac.authorization.k8s.io/aggregate-to-"+r] = "true"
	}
	return l
}

func rule(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
}

// DefaultClusterRoles are the ClusterRoles Start installs: OpenShift's API groups aggregated into admin, edit and
// view.
func DefaultClusterRoles() []*rbacv1.ClusterRole {
	role := func(name string, labels map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Rules: rules}
	}
	return []*rbacv1.ClusterRole{
		role("devcluster-openshift-aggregate-to-edit", aggregateLabels("admin", "edit"),
			rule("route.openshift.io", []string{"routes", "routes/custom-host"}, writeVerbs...),
			rule("route.openshift.io", []string{"routes/status"}, readVerbs...),
			rule("build.openshift.io", []string{"buildconfigs", "buildconfigs/webhooks", "builds"}, writeVerbs...),
			rule("build.openshift.io", []string{"buildconfigs/instantiate", "buildconfigs/instantiatebinary", "builds/clone"}, "create"),
			rule("build.openshift.io", []string{"builds/log"}, readVerbs...),
			rule("image.openshift.io", []string{"imagestreams", "imagestreamtags", "imagestreamimports", "imagetags"}, writeVerbs...),
			rule("image.openshift.io", []string{"imagestreams/status", "imagestreamimages"}, readVerbs...)),
		role("devcluster-openshift-aggregate-to-view", aggregateLabels("view"),
			rule("route.openshift.io", []string{"routes", "routes/status"}, readVerbs...),
			rule("build.openshift.io", []string{"buildconfigs", "builds", "builds/log"}, readVerbs...),
			rule("image.openshift.io", []string{"imagestreams", "imagestreams/status", "imagestreamtags", "imagestreamimages", "imagetags"}, readVerbs...)),
	}
}

// applyClusterRoles creates the ClusterRoles, or updates the rules and labels of those that exist.
func applyClusterRoles(ctx context.Context, kube kubernetes.Interface, roles []*rbacv1.ClusterRole) error {
	api := kube.RbacV1().ClusterRoles()
	for _, r := range roles {
		_, err := api.Create(ctx, r.DeepCopy(), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // another test binary on the same cluster may apply them too
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := api.Get(ctx, r.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur.Labels, cur.Rules, cur.AggregationRule = r.Labels, r.Rules, r.AggregationRule
				_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("apply ClusterRole %s: %w", r.Name, err)
		}
	}
	return nil
}

// waitAggregated waits until kube-controller-manager has aggregated the roles into the ClusterRoles their labels
// name (admin, edit, view), so that a namespace's admin holds their rules when this returns.
func waitAggregated(ctx context.Context, kube kubernetes.Interface, roles []*rbacv1.ClusterRole) error {
	for _, r := range roles {
		if len(r.Rules) == 0 || len(r.Rules[0].APIGroups) == 0 || len(r.Rules[0].Resources) == 0 {
			continue
		}
		group, resource := r.Rules[0].APIGroups[0], r.Rules[0].Resources[0]
		for _, into := range []string{"admin", "edit", "view"} {
			if r.Labels["rbac.authorization.k8s.io/aggregate-to-"+into] != "true" {
				continue
			}
			what := fmt.Sprintf("ClusterRole %s aggregated into %s", r.Name, into)
			if err := waitFor(ctx, what, 60*time.Second, nil, func(ctx context.Context) bool {
				agg, err := kube.RbacV1().ClusterRoles().Get(ctx, into, metav1.GetOptions{})
				if err != nil {
					return false
				}
				for _, ar := range agg.Rules {
					if slices.Contains(ar.APIGroups, group) && slices.Contains(ar.Resources, resource) {
						return true
					}
				}
				return false
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
