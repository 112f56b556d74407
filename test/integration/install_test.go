package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

var (
	kustomizeMu    sync.Mutex
	kustomizeCache = map[string][]*unstructured.Unstructured{}
	tektonOnce     sync.Once
	tektonErr      error
)

// kustomizeBuild renders the kustomization in dir (relative to the repository root) with kustomize's Go API, as
// `oc apply -k` does (files outside a kustomization's directory refused, no plugins).
func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kustomizeMu.Lock()
	defer kustomizeMu.Unlock()
	if _, ok := kustomizeCache[dir]; !ok {
		m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join("../..", dir))
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		var objs []*unstructured.Unstructured
		for _, r := range m.Resources() {
			data, err := r.MarshalJSON()
			obj := &unstructured.Unstructured{}
			if err == nil {
				err = obj.UnmarshalJSON(data)
			}
			if err != nil {
				t.Fatalf("kustomize build %s: %v", dir, err)
			}
			objs = append(objs, obj)
		}
		kustomizeCache[dir] = objs
	}
	var out []*unstructured.Unstructured
	for _, o := range kustomizeCache[dir] {
		out = append(out, o.DeepCopy())
	}
	return out
}

// installTekton installs Tekton's CRDs and ClusterRoles once per test binary.
func installTekton(t *testing.T) {
	t.Helper()
	devclustertest.Require(t, cluster)
	tektonOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		_, tektonErr = cluster.InstallTekton(ctx)
	})
	if tektonErr != nil {
		t.Fatalf("install Tekton's CRDs and ClusterRoles: %v", tektonErr)
	}
}

// projectAdmin binds user to the ClusterRole admin in ns (what `oc adm policy add-role-to-user admin` does) and
// returns a client config that impersonates them.
func projectAdmin(t *testing.T, ns, user string) *rest.Config {
	t.Helper()
	bindUser(t, ns, user, "admin")
	cfg := cluster.Config()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

func bindUser(t *testing.T, ns, user, clusterRole string) {
	t.Helper()
	if _, err := kube(t).RbacV1().RoleBindings(ns).Create(context.Background(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-" + clusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// can asks the real authorizer whether user may do verb on group/resource in ns ("" for cluster-wide).
func can(t *testing.T, user, verb, group, resource, ns string) bool {
	t.Helper()
	sar, err := kube(t).AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}

// untilAllowed waits until RBAC changes reach the authorizer's cache (within moments).
func untilAllowed(t *testing.T, user, verb, group, resource, ns string) {
	t.Helper()
	waitUntil(t, 30*time.Second, fmt.Sprintf("%s may %s %s.%s in %q", user, verb, resource, group, ns), func() bool {
		return can(t, user, verb, group, resource, ns)
	})
}

// applyAs creates every object in ns with cfg's credentials, as `oc apply -n ns` does in a fresh namespace, and
// returns the first refusal.
func applyAs(t *testing.T, cfg *rest.Config, ns string, objs []*unstructured.Unstructured) error {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cluster.Config())))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		var api dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			api = dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := api.Create(context.Background(), o, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// checkCreated checks, as cluster admin, that every object exists in ns.
func checkCreated(t *testing.T, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(cluster.Config())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cluster.Config())))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		if _, err := dyn.Resource(m.Resource).Namespace(ns).Get(context.Background(), o.GetName(), metav1.GetOptions{}); err != nil {
			t.Errorf("%s %s/%s: %v", o.GetKind(), ns, o.GetName(), err)
		}
	}
}

// routerAPI is the group and resource of each router's object, and whether the admin role holds it (on OpenShift
// and on the local control plane).
var routerAPI = map[string]struct {
	group, resource string
	inAdmin         bool
}{
	"route":     {"route.openshift.io", "routes", true},
	"httproute": {"gateway.networking.k8s.io", "httproutes", false},
	"istio":     {"networking.istio.io", "virtualservices", false},
	"nginx":     {"networking.k8s.io", "ingresses", true},
}

// routerUsers is a ClusterRole on a router's API, as the router's installation grants it to the namespaces that
// use it; the test binds it in one namespace only.
func routerUsers(t *testing.T, router string) string {
	t.Helper()
	api := routerAPI[router]
	name := "canaryline-test-" + router + "-users"
	_, err := kube(t).RbacV1().ClusterRoles().Create(context.Background(), &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{api.group}, Resources: []string{api.resource},
			Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"}}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return name
}

// TestInstallAsProjectAdmin: a project admin (a user bound only to the ClusterRole admin in the namespace, as on
// OpenShift) installs canaryline with the commands the README gives: every object of `oc apply -k . -n NS`, of each
// router's overlay (with the router's API granted, as the router's installation does), and of
// `oc apply -k triggers -n NS` is created. The ServiceAccounts' bindings hold in that namespace only, and the
// cluster-scoped binding for the Triggers is refused to the project admin and works for a cluster admin.
func TestInstallAsProjectAdmin(t *testing.T) {
	t.Parallel()
	installTekton(t)

	t.Run("default", func(t *testing.T) {
		t.Parallel()
		ns := devclustertest.Namespace(t, cluster)
		user := "alice"
		cfg := projectAdmin(t, ns, user)
		untilAllowed(t, user, "create", "tekton.dev", "pipelines", ns)
		objs := kustomizeBuild(t, ".")
		if err := applyAs(t, cfg, ns, objs); err != nil {
			t.Fatalf("as a project admin: %v", err)
		}
		checkCreated(t, ns, objs)
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.GetKind()]++
		}
		if kinds["Task"] != 5 || kinds["Pipeline"] != 8 || kinds["Role"] != 1 || kinds["RoleBinding"] != 1 || kinds["ServiceAccount"] != 1 {
			t.Errorf("installed %v; want 5 Tasks, 8 Pipelines, the Role, its RoleBinding and the ServiceAccount", kinds)
		}
		// The RoleBinding's subject has no namespace, which means the binding's: canaryline in ns, and no other.
		steps := "system:serviceaccount:" + ns + ":canaryline"
		untilAllowed(t, steps, "update", "route.openshift.io", "routes", ns)
		for _, denied := range []struct{ user, group, resource, ns string }{
			{"system:serviceaccount:default:canaryline", "route.openshift.io", "routes", ns},
			{steps, "route.openshift.io", "routes", "default"},
			{steps, "gateway.networking.k8s.io", "httproutes", ns},
			{steps, "networking.istio.io", "virtualservices", ns},
			{steps, "networking.k8s.io", "ingresses", ns},
		} {
			if can(t, denied.user, "update", denied.group, denied.resource, denied.ns) {
				t.Errorf("%s may update %s in %q; the default install grants only the Route router, in its namespace", denied.user, denied.resource, denied.ns)
			}
		}
	})

	for _, router := range []string{"httproute", "istio", "nginx"} {
		t.Run(router, func(t *testing.T) {
			t.Parallel()
			ns := devclustertest.Namespace(t, cluster)
			user := "alice"
			cfg := projectAdmin(t, ns, user)
			untilAllowed(t, user, "create", "tekton.dev", "pipelines", ns)
			api := routerAPI[router]
			objs := kustomizeBuild(t, routerInstall(router))
			if !api.inAdmin {
				// Without the router's API, the admin role cannot grant it: the Role is refused, naming it.
				var role []*unstructured.Unstructured
				for _, o := range objs {
					if o.GetKind() == "Role" {
						role = append(role, o)
					}
				}
				err := applyAs(t, cfg, ns, role)
				if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), api.resource) {
					t.Errorf("the %s Role without %s granted: %v; want Forbidden naming %s", router, api.resource, err, api.resource)
				}
				bindUser(t, ns, user, routerUsers(t, router))
				untilAllowed(t, user, "update", api.group, api.resource, ns)
			}
			if err := applyAs(t, cfg, ns, objs); err != nil {
				t.Fatalf("as a project admin: %v", err)
			}
			checkCreated(t, ns, objs)
			untilAllowed(t, "system:serviceaccount:"+ns+":canaryline", "update", api.group, api.resource, ns)
			for other, oapi := range routerAPI {
				if other != router && other != "route" && can(t, "system:serviceaccount:"+ns+":canaryline", "update", oapi.group, oapi.resource, ns) {
					t.Errorf("install/%s grants update on %s too", router, oapi.resource)
				}
			}
		})
	}

	t.Run("triggers", func(t *testing.T) {
		t.Parallel()
		ns := devclustertest.Namespace(t, cluster)
		user := "alice"
		cfg := projectAdmin(t, ns, user)
		untilAllowed(t, user, "create", "triggers.tekton.dev", "eventlisteners", ns)
		objs := kustomizeBuild(t, "triggers")
		for _, o := range objs {
			if o.GetNamespace() != "" {
				t.Errorf("%s %s has namespace %q; `oc apply -k triggers -n NS` must place it", o.GetKind(), o.GetName(), o.GetNamespace())
			}
		}
		if err := applyAs(t, cfg, ns, objs); err != nil {
			t.Fatalf("as a project admin: %v", err)
		}
		checkCreated(t, ns, objs)
		el := "system:serviceaccount:" + ns + ":canaryline-triggers"
		untilAllowed(t, el, "create", "tekton.dev", "pipelineruns", ns)
		if can(t, el, "list", "triggers.tekton.dev", "clusterinterceptors", "") {
			t.Fatal("the EventListeners' ServiceAccount reads ClusterInterceptors before the cluster admin's binding")
		}

		// The cluster admin's part, the command the kustomization gives.
		crb := clusterAdminBinding(t, ns)
		if _, err := kubernetes.NewForConfigOrDie(cfg).RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("the ClusterRoleBinding as a project admin: %v; want Forbidden", err)
		}
		if _, err := kube(t).RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the ClusterRoleBinding as a cluster admin: %v", err)
		}
		t.Cleanup(func() {
			_ = kube(t).RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
		})
		untilAllowed(t, el, "list", "triggers.tekton.dev", "clusterinterceptors", "")
	})
}

// clusterAdminBinding is the ClusterRoleBinding that the `oc create clusterrolebinding` command in
// triggers/kustomization.yaml creates for namespace ns.
func clusterAdminBinding(t *testing.T, ns string) *rbacv1.ClusterRoleBinding {
	t.Helper()
	data, err := os.ReadFile("../../triggers/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(data), "\n") {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimLeft(line, "#")), "oc create clusterrolebinding "); ok {
			args = strings.Fields(strings.ReplaceAll(cmd, "NAMESPACE", ns))
		}
	}
	if len(args) != 3 {
		t.Fatalf("triggers/kustomization.yaml gives no `oc create clusterrolebinding NAME --clusterrole=R --serviceaccount=NS:SA`: %q", args)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: args[0]}}
	for _, a := range args[1:] {
		switch k, v, _ := strings.Cut(a, "="); k {
		case "--clusterrole":
			crb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: v}
		case "--serviceaccount":
			saNS, sa, _ := strings.Cut(v, ":")
			crb.Subjects = []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNS, Name: sa}}
		default:
			t.Fatalf("unexpected argument %q", a)
		}
	}
	if !slices.ContainsFunc(crb.Subjects, func(s rbacv1.Subject) bool { return s.Namespace == ns }) {
		t.Fatalf("the command's ServiceAccount is not in the namespace: %+v", crb.Subjects)
	}
	return crb
}
