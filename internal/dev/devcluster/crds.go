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
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

// Modules the CRDs come from. OpenShiftAPI must match go.mod (a test checks it).
const (
	OpenShiftAPI = "github.com/openshift/api@v0.0.0-20251015095338-264e80a2b6e7"
	GatewayAPI   = "sigs.k8s.io/gateway-api@v1.6.3"
	IstioAPI     = "istio.io/api@v1.32.0"
)

// crdSource is one CRD manifest in a module, filtered to the named CRDs (all when empty).
type crdSource struct {
	module, path string
	names        []string
}

var crdSources = []crdSource{
	{OpenShiftAPI, "route/v1/zz_generated.crd-manifests/routes.crd.yaml", nil},
	{GatewayAPI, "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml", nil},
	{IstioAPI, "kubernetes/customresourcedefinitions.gen.yaml",
		[]string{"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"}},
}

// ensureCRDs returns the CRDs to install, reading them from the cache or, on first use, from the module proxy.
func ensureCRDs(ctx context.Context, cacheDir string, log io.Writer) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	key := strings.NewReplacer("/", "_", "@", "-").Replace(OpenShiftAPI + "+" + GatewayAPI + "+" + IstioAPI)
	path := filepath.Join(cacheDir, "crds", key+".json")
	if data, err := os.ReadFile(path); err == nil {
		var crds []*apiextensionsv1.CustomResourceDefinition
		if err := json.Unmarshal(data, &crds); err == nil {
			return crds, nil
		}
	}
	fmt.Fprintf(log, "devcluster: fetching CRDs from %s, %s, %s\n", OpenShiftAPI, GatewayAPI, IstioAPI)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, src := range crdSources {
		dir, err := moduleDir(ctx, src.module)
		if err != nil {
			return nil, err
		}
		got, err := readCRDs(filepath.Join(dir, src.path), src.names)
		if err != nil {
			return nil, err
		}
		crds = append(crds, got...)
	}
	dir, err := moduleDir(ctx, OpenShiftAPI)
	if err != nil {
		return nil, err
	}
	gen, err := openShiftCRDs(filepath.Join(dir, "openapi", "openapi.json"))
	if err != nil {
		return nil, err
	}
	crds = append(crds, gen...)
	data, err := json.Marshal(crds)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return crds, os.WriteFile(path, data, 0o644)
}

// moduleDir downloads module@version through the Go module proxy and returns its directory.
func moduleDir(ctx context.Context, modVersion string) (string, error) {
	out, err := gobuild.Output(ctx, os.TempDir(), "mod", "download", "-json", modVersion)
	var info struct{ Dir, Error string }
	_ = json.Unmarshal(out, &info)
	if err != nil || info.Dir == "" {
		return "", fmt.Errorf("download module %s: %v %s", modVersion, err, info.Error)
	}
	return info.Dir, nil
}

func readCRDs(path string, names []string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CRDs: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := dec.Decode(crd); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if crd.Name == "" || (len(names) > 0 && !contains(names, crd.Name)) {
			continue
		}
		crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
		out = append(out, crd)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CRDs %v in %s", names, path)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// installCRDs creates (or updates) the CRDs and waits until the API server serves each of them.
func installCRDs(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		if _, err := api.Create(ctx, crd.DeepCopy(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		name := crd.Name
		if err := waitFor(ctx, "CRD "+name+" established", 60*time.Second, nil, func(ctx context.Context) bool {
			got, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true
				}
			}
			return false
		}); err != nil {
			return err
		}
	}
	return nil
}
