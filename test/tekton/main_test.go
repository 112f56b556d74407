// Package tekton runs canaryline's Pipelines as PipelineRuns on the real Tekton controller (and its webhook,
// resolvers and Triggers), on the local control plane with its real node: every TaskRun's steps run as pods from
// the step image. The tests need root (the real node); without it they skip, saying why.
package tekton

import (
	"os"
	"testing"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

var cluster *devcluster.Cluster

func TestMain(m *testing.M) {
	os.Exit(devclustertest.RunTestsWith(m, &cluster, devcluster.Options{Tekton: true}))
}
