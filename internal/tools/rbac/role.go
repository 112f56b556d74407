// Package rbac makes the per-application Role: the shipped Role (tasks/role.yaml) narrowed so that a
// ServiceAccount bound to it can change one application's objects and no other's. Kubernetes RBAC cannot narrow
// create or list by name, so creating objects and reading lists stay namespace-wide; every get, update and delete of
// a named object is limited to the application's own names.
package rbac

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

// Options name one application's objects. Empty fields default as the steps' params do.
type Options struct {
	App           string // the stable Deployment (APP)
	Namespace     string
	StableService string // STABLE_SERVICE; App when empty
	RouterName    string // ROUTER_NAME; App when empty
	BuildConfig   string // BUILD_CONFIG; App when empty
	// Router is the router kind (ROUTER): route when empty. The Role holds the shipped Role's rules for the Route
	// and, for httproute, istio and nginx, the rules of that router's component (components/router-KIND).
	Router string
	// ServiceAccount, when set, adds a RoleBinding of the Role to it.
	ServiceAccount string
}

func (o *Options) defaults() error {
	if errs := validation.IsDNS1123Subdomain(o.App); o.App == "" || len(errs) > 0 {
		return fmt.Errorf("--app %q: give the application's Deployment name (%s)", o.App, strings.Join(errs, "; "))
	}
	for _, f := range []*string{&o.StableService, &o.RouterName, &o.BuildConfig} {
		if *f == "" {
			*f = o.App
		}
	}
	if o.Router == "" {
		o.Router = traffic.KindRoute
	}
	if !slices.Contains(traffic.Kinds, o.Router) {
		return fmt.Errorf("--router %q: use one of %s (the pipeline's router param)", o.Router, strings.Join(traffic.Kinds, ", "))
	}
	return nil
}

// RoleName is the name of the per-application Role.
func RoleName(app string) string { return "canaryline-steps-" + app }

// AppRole is the Role for releasing o.App only.
func AppRole(o Options) (*rbacv1.Role, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	named := func(group, resource string, verbs []string, names ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs, ResourceNames: names}
	}
	all := func(group string, resources []string, verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: resources, Verbs: verbs}
	}
	app, svc, router := o.App, o.StableService, o.RouterName
	rules := []rbacv1.PolicyRule{
		// start-build, wait-build: this application's BuildConfig; its builds are named by OpenShift (app-N), so
		// following and cancelling them stays namespace-wide.
		named("build.openshift.io", "buildconfigs", []string{"get"}, o.BuildConfig),
		named("build.openshift.io", "buildconfigs/instantiate", []string{"create"}, o.BuildConfig),
		all("build.openshift.io", []string{"builds"}, "get", "list", "watch", "update"),
		all("build.openshift.io", []string{"builds/log"}, "get"),
		all("image.openshift.io", []string{"imagestreamtags"}, "get"),
		// The release lock and record; verify-health's approval gate watches it by name (list+watch).
		named("coordination.k8s.io", "leases", []string{"get", "list", "watch", "update"}, "canaryline-"+app),
		// The stable, canary and baseline Deployments and Services; watches of a Deployment select it by name. The
		// stable is resumed after it took over the canary's ReplicaSet by a JSON patch that tests canaryline's
		// paused-by annotation (patch).
		named("apps", "deployments", []string{"get", "list", "watch", "update", "patch", "delete"}, app, naming.Canary(app), naming.Baseline(app)),
		// The stable Service's selector is put back by a merge patch of the keys the release changed (patch).
		named("", "services", []string{"get", "update", "patch", "delete"}, svc, naming.Canary(svc), naming.Baseline(svc)),
		// The Route (the shipped Role's router).
		named("route.openshift.io", "routes", []string{"get", "update"}, router),
		named("route.openshift.io", "routes", []string{"get", "update", "delete"}, naming.Canary(svc)), // the test Route of MATCH or TEST_HOST
		// Creating cannot be narrowed by name in RBAC; a create of an object that exists fails.
		all("apps", []string{"deployments"}, "create"),
		all("", []string{"services"}, "create"),
		all("coordination.k8s.io", []string{"leases"}, "create"),
		all("route.openshift.io", []string{"routes"}, "create", "list"), // the test Route; list finds a TEST_HOST taken
		all("", []string{"events"}, "create"),
		// Reading by label (the stable ReplicaSet, pods, endpoints) cannot be narrowed by name either.
		all("apps", []string{"replicasets"}, "list"),
		all("", []string{"pods"}, "list"),
		all("discovery.k8s.io", []string{"endpointslices"}, "list", "watch"),
		// A stopped step's TaskRun and its PipelineRun: Tekton names them, not the application.
		all("tekton.dev", []string{"taskruns", "pipelineruns"}, "get"),
	}
	rules = append(rules, jobCheckRules()...)
	// The router's component (components/router-KIND), narrowed the same way.
	switch o.Router {
	case traffic.KindHTTPRoute:
		rules = append(rules, named("gateway.networking.k8s.io", "httproutes", []string{"get", "update"}, router))
	case traffic.KindIstio:
		rules = append(rules, named("networking.istio.io", "virtualservices", []string{"get", "update"}, router))
	case traffic.KindNginx: // the stable Ingress and the canary Ingress the steps create
		rules = append(rules, named("networking.k8s.io", "ingresses", []string{"get", "update", "delete"}, router, traffic.NginxCanaryName(router, svc)),
			all("networking.k8s.io", []string{"ingresses"}, "create"))
	}
	return &rbacv1.Role{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: RoleName(app), Namespace: o.Namespace, Labels: map[string]string{
			"app.kubernetes.io/name": "canaryline", "canaryline.dev/app": app}},
		Rules: rules,
	}, nil
}

// jobCheckRules are verify-health's job check's: the team names the ConfigMap holding the Job template, and the
// Jobs are created (and so found again, listed and watched) under names derived from the analysis, so none of it
// can be narrowed to the application's names; the end of the Job pods' logs.
func jobCheckRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch", "create"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
	}
}

// Manifests is the Role (and, with a ServiceAccount, its RoleBinding) as YAML documents.
func Manifests(o Options) ([]byte, error) {
	role, err := AppRole(o)
	if err != nil {
		return nil, err
	}
	out, err := yaml.Marshal(role)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# The Role for canaryline's steps releasing %s only: bind it instead of tasks/role.yaml.\n", role.Labels["canaryline.dev/app"])
	out = append([]byte(head), out...)
	if o.ServiceAccount != "" {
		rb := &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: o.Namespace, Labels: role.Labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: o.ServiceAccount, Namespace: o.Namespace}},
		}
		data, err := yaml.Marshal(rb)
		if err != nil {
			return nil, err
		}
		out = append(append(out, []byte("---\n")...), data...)
	}
	return out, nil
}
