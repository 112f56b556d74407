package devcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ReadObjects reads the objects of a YAML (or JSON) file of one or more documents, skipping empty ones.
func ReadObjects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if m != nil {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// Apply server-side applies objs in order (forced, as fieldManager) on the cluster of cfg. namespace, when not
// empty, is set on every namespaced object. A kind that is not served yet (its CRD was just created) is waited
// for up to a minute.
func Apply(ctx context.Context, cfg *rest.Config, fieldManager, namespace string, objs []*unstructured.Unstructured) error {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	return apply(ctx, kube, dyn, fieldManager, namespace, objs)
}

// applyAll server-side applies objs in order, waiting for a kind to be served when its CRD was just created.
func applyAll(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	return apply(ctx, kube, dyn, fieldManager, "", objs)
}

func apply(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, manager, namespace string, objs []*unstructured.Unstructured) error {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		mapping, err := waitMapping(ctx, mapper, o)
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if namespace != "" {
				o.SetNamespace(namespace)
			}
			ri = dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
		}
		data, err := json.Marshal(o.Object)
		if err != nil {
			return err
		}
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: manager,
			Force: ptr(true)}); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}

// waitMapping finds the resource of o's kind, rediscovering for up to a minute while it is not served.
func waitMapping(ctx context.Context, mapper *restmapper.DeferredDiscoveryRESTMapper, o *unstructured.Unstructured) (*meta.RESTMapping, error) {
	gvk := o.GroupVersionKind()
	deadline := time.Now().Add(time.Minute)
	for {
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil {
			return mapping, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("apply %s %s: %w", gvk.Kind, o.GetName(), err)
		}
		mapper.Reset()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
