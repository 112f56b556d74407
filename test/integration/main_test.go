// Package integration runs against the real local control plane (internal/dev/devcluster): kube-apiserver with RBAC,
// controller-manager, scheduler and KWOK nodes, plus the OpenShift API shim and the build simulator.
package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

var cluster *devcluster.Cluster

// The cluster has a real node (kubelet, containerd, runc) beside the KWOK nodes when this machine can run one;
// TestRealNode... tests need it and say why they skip without.
func TestMain(m *testing.M) {
	code := devclustertest.RunTestsWith(m, &cluster, devcluster.Options{RealNode: true})
	for _, bin := range []string{stepsBin, cliBin} { // built once for the test binary (stepsBinary, canarylineBinary)
		if filepath.IsAbs(bin) {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}
