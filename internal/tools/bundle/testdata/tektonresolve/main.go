// Command tektonresolve resolves entries of a Tekton bundle with Tekton's own bundles resolver code, as the
// resolvers controller does: ResolveRequest (github.com/tektoncd/pipeline/pkg/resolution/resolver/bundle, which
// pkg/remoteresolution/resolver/bundle calls) with a keychain from a (fake) kube client, then the framework's check
// of the resolved data. It is built by internal/tools/bundle's tests in a scratch module of its own, because the bundles
// resolver package needs modules (k8schain and the cloud registry helpers) that canaryline's go.mod does not have.
//
// usage: tektonresolve BUNDLE KIND NAME [KIND NAME ...]
//
// It prints a JSON array with one entry per (KIND, NAME): the resolved bytes, the annotations and the RefSource, or
// the error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	"github.com/tektoncd/pipeline/pkg/resolution/common"
	"github.com/tektoncd/pipeline/pkg/resolution/resolver/bundle"
	"github.com/tektoncd/pipeline/pkg/resolution/resolver/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

type entry struct {
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Data        []byte            `json:"data,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	EntryPoint  string            `json:"entryPoint,omitempty"`
	Error       string            `json:"error,omitempty"`
}

func main() {
	if len(os.Args) < 4 || len(os.Args)%2 != 0 {
		fmt.Fprintln(os.Stderr, "usage: tektonresolve BUNDLE KIND NAME [KIND NAME ...]")
		os.Exit(2)
	}
	ref := os.Args[1]
	const ns = "canaryline"
	kube := fake.NewSimpleClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx = common.InjectRequestNamespace(ctx, ns)
	// The bundleresolver-config ConfigMap as Tekton installs it.
	ctx = framework.InjectResolverConfigToContext(ctx, map[string]string{
		bundle.ConfigServiceAccount: "default",
		bundle.ConfigKind:           "task",
		bundle.ConfigBackoffSteps:   "1",
	})

	var out []entry
	for i := 2; i+1 < len(os.Args); i += 2 {
		e := entry{Kind: os.Args[i], Name: os.Args[i+1]}
		params := []v1.Param{
			{Name: bundle.ParamBundle, Value: *v1.NewStructuredValues(ref)},
			{Name: bundle.ParamName, Value: *v1.NewStructuredValues(e.Name)},
			{Name: bundle.ParamKind, Value: *v1.NewStructuredValues(e.Kind)},
		}
		if err := bundle.ValidateParams(ctx, params); err != nil {
			e.Error = "ValidateParams: " + err.Error()
			out = append(out, e)
			continue
		}
		res, err := bundle.ResolveRequest(ctx, kube, &v1beta1.ResolutionRequestSpec{Params: params})
		if err == nil {
			err = framework.ValidateResolvedResource(res)
		}
		if err != nil {
			e.Error = err.Error()
			out = append(out, e)
			continue
		}
		e.Data, e.Annotations = res.Data(), res.Annotations()
		if src := res.RefSource(); src != nil {
			e.URI, e.Digest, e.EntryPoint = src.URI, src.Digest, src.EntryPoint
		}
		out = append(out, e)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
