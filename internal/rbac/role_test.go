package rbac

import (
	"os"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
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

// TestAppRoleIsTheShippedRoleNarrowed: the per-application Role grants exactly the verbs and resources of the
// shipped Role, no more and no fewer, with every get, update and delete narrowed to the application's names.
func TestAppRoleIsTheShippedRoleNarrowed(t *testing.T) {
	data, err := os.ReadFile("../../tasks/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shipped := &rbacv1.Role{}
	if err := yaml.UnmarshalStrict(data, shipped); err != nil {
		t.Fatal(err)
	}
	role, err := AppRole(Options{App: "shop", Namespace: "team-a", RouterName: "shop-public"})
	if err != nil {
		t.Fatal(err)
	}
	want, got := grants(shipped.Rules), grants(role.Rules)
	for g := range got {
		if !want[g] {
			t.Errorf("the per-application Role grants %s, which the shipped Role does not", g)
		}
	}
	for g := range want {
		if !got[g] {
			t.Errorf("the per-application Role lacks %s, which the steps use", g)
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
