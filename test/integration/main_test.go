// Package integration runs against the real local control plane (internal/devcluster): kube-apiserver with RBAC,
// controller-manager, scheduler and KWOK nodes, plus the OpenShift API shim and the build simulator.
package integration

import (
	"os"
	"testing"

	"github.com/canaryline/canaryline/internal/devcluster"
)

var cluster *devcluster.Cluster

func TestMain(m *testing.M) { os.Exit(devcluster.RunTests(m, &cluster)) }
