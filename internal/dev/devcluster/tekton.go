package devcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
)

// The Tekton modules the CRDs and ClusterRoles come from. They must match go.mod (a test checks it).
const (
	TektonPipeline = "github.com/tektoncd/pipeline@v1.15.0"
	TektonTriggers = "github.com/tektoncd/triggers@v0.37.0"
)

// tektonSource is a set of files in a module's config/ directory (globs relative to the module).
type tektonSource struct {
	module      string
	crds, roles []string
}

var tektonSources = []tektonSource{
	{TektonPipeline, []string{"config/300-crds/*.yaml"},
		[]string{"config/200-clusterrole.yaml", "config/clusterrole-aggregate-edit.yaml", "config/clusterrole-aggregate-view.yaml"}},
	{TektonTriggers, []string{"config/300-*.yaml"},
		[]string{"config/200-clusterrole.yaml", "config/clusterrole-aggregate-edit.yaml", "config/clusterrole-aggregate-view.yaml"}},
}

// Tekton is what InstallTekton installs.
type Tekton struct {
	CRDs         []*apiextensionsv1.CustomResourceDefinition `json:"crds"`
	ClusterRoles []*rbacv1.ClusterRole                       `json:"clusterRoles"`
}

// InstallTekton installs Tekton Pipelines' and Triggers' CRDs and ClusterRoles, as OpenShift Pipelines does before
// any controller runs, and waits until the API server serves the CRDs. The aggregate ClusterRoles let a namespace's
// admin, edit and view users use Tasks, Pipelines, TriggerTemplates, EventListeners and the rest; the Triggers'
// ClusterRoles (tekton-triggers-eventlistener-roles, -clusterroles) are what an EventListener's ServiceAccount is
// bound to. It returns once admin, edit and view include the aggregated rules. No Tekton controller or webhook runs.
// Installing again changes nothing.
func (c *Cluster) InstallTekton(ctx context.Context) (*Tekton, error) {
	cacheDir := c.cacheDir
	if cacheDir == "" {
		var err error
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	t, err := ensureTekton(ctx, cacheDir, c.log)
	if err != nil {
		return nil, err
	}
	cfg := c.restConfig(c.APIServerURL)
	if err := installCRDs(ctx, cfg, t.CRDs); err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := applyClusterRoles(ctx, kube, t.ClusterRoles); err != nil {
		return nil, err
	}
	return t, waitAggregated(ctx, kube, t.ClusterRoles)
}

// ensureTekton returns the Tekton CRDs and ClusterRoles, from the cache or, on first use, from the module proxy.
func ensureTekton(ctx context.Context, cacheDir string, log io.Writer) (*Tekton, error) {
	key := strings.NewReplacer("/", "_", "@", "-").Replace(TektonPipeline + "+" + TektonTriggers)
	path := filepath.Join(cacheDir, "crds", key+".json")
	if data, err := os.ReadFile(path); err == nil {
		t := &Tekton{}
		if err := json.Unmarshal(data, t); err == nil && len(t.CRDs) > 0 {
			return t, nil
		}
	}
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "devcluster: reading Tekton CRDs and ClusterRoles from %s, %s\n", TektonPipeline, TektonTriggers)
	t := &Tekton{}
	for _, src := range tektonSources {
		dir, err := moduleDir(ctx, src.module)
		if err != nil {
			return nil, err
		}
		crdFiles, err := globAll(dir, src.crds)
		if err != nil {
			return nil, err
		}
		for _, p := range crdFiles {
			crds, err := readCRDs(p, nil)
			if err != nil {
				return nil, err
			}
			t.CRDs = append(t.CRDs, withoutConversionWebhook(crds)...)
		}
		roleFiles, err := globAll(dir, src.roles)
		if err != nil {
			return nil, err
		}
		for _, p := range roleFiles {
			roles, err := readClusterRoles(p)
			if err != nil {
				return nil, err
			}
			t.ClusterRoles = append(t.ClusterRoles, roles...)
		}
	}
	data, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid()) // other test binaries may read it meanwhile
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return nil, err
	}
	return t, os.Rename(tmp, path)
}

// withoutConversionWebhook sets the CRDs' conversion to None. Tekton's CRDs convert between v1beta1 and v1 through
// Tekton's webhook, which does not run here; with None the API server serves each stored object under either
// version unchanged, which is right for objects created as the storage version (v1).
func withoutConversionWebhook(crds []*apiextensionsv1.CustomResourceDefinition) []*apiextensionsv1.CustomResourceDefinition {
	for _, crd := range crds {
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	}
	return crds
}

func globAll(dir string, patterns []string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		got, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			return nil, err
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("no %s in %s", p, dir)
		}
		out = append(out, got...)
	}
	return out, nil
}

// readClusterRoles returns the ClusterRoles in a multi-document manifest, skipping other kinds.
func readClusterRoles(path string) ([]*rbacv1.ClusterRole, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read ClusterRoles: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*rbacv1.ClusterRole
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		r := &rbacv1.ClusterRole{}
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if r.Kind == "ClusterRole" {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ClusterRoles in %s", path)
	}
	return out, nil
}
