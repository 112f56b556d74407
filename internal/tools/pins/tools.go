//go:build tools

// Package tools pins, in go.mod, the libraries that the pipeline tooling is built on: Tekton's own types, DAG and
// substitution code (for `canaryline run`, the catalog and bundle generators). Step binaries never import them.
// `make lint` compiles this file (go build -tags tools) so the pinned versions are known to build together.
package tools

import (
	_ "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	_ "github.com/tektoncd/pipeline/pkg/reconciler/pipeline/dag"
	_ "github.com/tektoncd/pipeline/pkg/substitution"
)
