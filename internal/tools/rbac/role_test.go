package rbac

import (
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/runtime/traffic"
)

// grants lists "group/resource verb" for every verb a set of rules grants.
func grants(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[g+"/"+res+" "+v] = true
				}
			}
		}
	}
	return out
}

// installedRole is the Role canaryline-steps that the install for router creates: the root kustomization for the
// Route and the replicas router, install/ROUTER (the shipped Role plus components/router-ROUTER) for the others.
func installedRole(t *testing.T, router string) *rbacv1.Role {
	t.Helper()
	dir := "../../.."
	if router == traffic.KindHTTPRoute || router == traffic.KindIstio || router == traffic.KindNginx {
		dir = "../../../install/" + router
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	for _, r := range m.Resources() {
		if r.GetKind() != "Role" || r.GetName() != "canaryline-steps" {
			continue
		}
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		role := &rbacv1.Role{}
		if err := yaml.UnmarshalStrict(data, role); err != nil {
			t.Fatal(err)
		}
		return role
	}
	t.Fatalf("%s installs no Role canaryline-steps", dir)
	return nil
}

// TestAppRoleIsTheShippedRoleNarrowed: for each router, the per-application Role grants exactly the verbs and
// resources of the Role that router's install creates (tasks/role.yaml plus the router's component), no more and
// no fewer, with every get, update and delete narrowed to the application's names.
func TestAppRoleIsTheShippedRoleNarrowed(t *testing.T) {
	data, err := os.ReadFile("../../../tasks/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shipped := &rbacv1.Role{}
	if err := yaml.UnmarshalStrict(data, shipped); err != nil {
		t.Fatal(err)
	}
	for _, router := range traffic.Kinds {
		t.Run(router, func(t *testing.T) {
			installed := installedRole(t, router)
			role, err := AppRole(Options{App: "shop", Namespace: "team-a", RouterName: "shop-public", Router: router})
			if err != nil {
				t.Fatal(err)
			}
			want, got := grants(installed.Rules), grants(role.Rules)
			for g := range grants(shipped.Rules) {
				if !want[g] {
					t.Errorf("the %s install lacks %s, which tasks/role.yaml grants", router, g)
				}
			}
			for g := range got {
				if !want[g] {
					t.Errorf("the per-application Role grants %s, which the %s install does not", g, router)
				}
			}
			for g := range want {
				if !got[g] {
					t.Errorf("the per-application Role lacks %s, which the %s install grants", g, router)
				}
			}
			for _, r := range role.Rules {
				for _, v := range r.Verbs {
					if (v == "update" || v == "delete") && len(r.ResourceNames) == 0 && r.Resources[0] != "builds" {
						t.Errorf("%v %s is not narrowed to the application's names", r.Resources, v)
					}
				}
				for _, n := range r.ResourceNames {
					if !strings.HasPrefix(n, "shop") && n != "canaryline-shop" {
						t.Errorf("rule %v names %q, not one of shop's objects", r.Resources, n)
					}
				}
			}
		})
	}
	// The shipped Role holds the Route router only; each other router's rules come with its component.
	for g := range grants(shipped.Rules) {
		for _, other := range []string{"gateway.networking.k8s.io/", "networking.istio.io/", "networking.k8s.io/"} {
			if strings.HasPrefix(g, other) {
				t.Errorf("tasks/role.yaml grants %s: a router's rules belong in its component", g)
			}
		}
	}
	if _, err := AppRole(Options{App: "shop", Router: "traefik"}); err == nil || !strings.Contains(err.Error(), "--router") {
		t.Errorf("an unknown router: %v; want an error naming --router", err)
	}
}

func TestManifests(t *testing.T) {
	out, err := Manifests(Options{App: "shop", Namespace: "team-a", ServiceAccount: "pipeline"})
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(out), "---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents; want the Role and its RoleBinding", len(docs))
	}
	rb := &rbacv1.RoleBinding{}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), rb); err != nil {
		t.Fatal(err)
	}
	if rb.RoleRef.Name != "canaryline-steps-shop" || rb.Subjects[0].Name != "pipeline" || rb.Namespace != "team-a" {
		t.Errorf("RoleBinding %+v", rb)
	}
	if _, err := Manifests(Options{App: "Shop_1"}); err == nil || !strings.Contains(err.Error(), "--app") {
		t.Errorf("an invalid app name: %v; want an error naming --app", err)
	}
}

// Applications sharing an Ingress each have their own canary Ingress: the Role names this application's.
func TestAppRoleNamesTheApplicationsCanaryIngress(t *testing.T) {
	role, err := AppRole(Options{App: "cart", Namespace: "team-a", RouterName: "storefront", Router: traffic.KindNginx})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range role.Rules {
		if r.Resources[0] == "ingresses" && len(r.ResourceNames) > 0 {
			names = append(names, r.ResourceNames...)
		}
	}
	if want := []string{"storefront", "storefront-cart-canary"}; !slices.Equal(names, want) {
		t.Errorf("Ingresses named %v; want %v", names, want)
	}
}
