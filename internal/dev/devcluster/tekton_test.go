package devcluster

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func TestTektonVersionsMatchGoMod(t *testing.T) {
	t.Parallel()
	for mod, want := range map[string]string{"github.com/tektoncd/pipeline": TektonPipeline, "github.com/tektoncd/triggers": TektonTriggers} {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}}@{{.Version}}", mod).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("go.mod has %s, the CRDs and ClusterRoles come from %s: update the constant", got, want)
		}
	}
}

// TestTektonManifests: the CRDs and ClusterRoles read from the Tekton modules are the ones OpenShift Pipelines
// installs, with no conversion webhook left in, and a second read comes from the cache.
func TestTektonManifests(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	got, err := ensureTekton(context.Background(), cache, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	crds := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, c := range got.CRDs {
		crds[c.Name] = c
		if c.Spec.Conversion == nil || c.Spec.Conversion.Strategy != apiextensionsv1.NoneConverter || c.Spec.Conversion.Webhook != nil {
			t.Errorf("CRD %s conversion %+v; want None (no webhook runs)", c.Name, c.Spec.Conversion)
		}
	}
	for _, name := range []string{"tasks.tekton.dev", "pipelines.tekton.dev", "pipelineruns.tekton.dev", "taskruns.tekton.dev",
		"eventlisteners.triggers.tekton.dev", "triggertemplates.triggers.tekton.dev", "triggerbindings.triggers.tekton.dev",
		"clusterinterceptors.triggers.tekton.dev"} {
		if crds[name] == nil {
			t.Errorf("no CRD %s", name)
		}
	}
	roles := map[string]map[string]string{}
	for _, r := range got.ClusterRoles {
		roles[r.Name] = r.Labels
	}
	for name, label := range map[string]string{
		"tekton-aggregate-edit": "rbac.authorization.k8s.io/aggregate-to-admin", "tekton-aggregate-view": "rbac.authorization.k8s.io/aggregate-to-view",
		"tekton-triggers-aggregate-edit":      "rbac.authorization.k8s.io/aggregate-to-admin",
		"tekton-triggers-eventlistener-roles": "", "tekton-triggers-eventlistener-clusterroles": ""} {
		labels, ok := roles[name]
		if !ok {
			t.Errorf("no ClusterRole %s", name)
		} else if label != "" && labels[label] != "true" {
			t.Errorf("ClusterRole %s lacks the label %s", name, label)
		}
	}
	again, err := ensureTekton(context.Background(), cache, nil)
	if err != nil || len(again.CRDs) != len(got.CRDs) || len(again.ClusterRoles) != len(got.ClusterRoles) {
		t.Errorf("from the cache: %d CRDs, %d ClusterRoles, %v; want %d, %d", len(again.CRDs), len(again.ClusterRoles), err, len(got.CRDs), len(got.ClusterRoles))
	}
}
