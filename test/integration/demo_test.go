package integration

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/demo"
)

// TestDemoBuildsAndDeploysStable runs the demo twice in one namespace: the second run builds again and converges
// on the same objects.
func TestDemoBuildsAndDeploysStable(t *testing.T) {
	t.Parallel()
	k := kube(t)
	ns := cluster.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	digestRef := regexp.MustCompile(`^image-registry\.openshift-image-registry\.svc:5000/` + ns + `/sample-app@sha256:[0-9a-f]{64}$`)

	for i, wantBuild := range []string{"sample-app-1", "sample-app-2"} {
		var out bytes.Buffer
		res, err := demo.Run(ctx, demo.Options{Config: cluster.Config(), Namespace: ns, App: "sample-app", Commit: strings.Repeat("ab", 20), Out: &out})
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out.String())
		}
		if res.Build != wantBuild || !digestRef.MatchString(res.Image) || res.Ready != 3 {
			t.Errorf("run %d: %+v; want build %s, an image pinned by digest, 3 ready", i+1, res, wantBuild)
		}
		if !strings.Contains(out.String(), "started build "+wantBuild) || !strings.Contains(out.String(), "\nPush successful\n") {
			t.Errorf("run %d: the build log was not streamed:\n%s", i+1, out.String())
		}
		d, err := k.AppsV1().Deployments(ns).Get(ctx, "sample-app", metav1.GetOptions{})
		if err != nil || d.Spec.Template.Spec.Containers[0].Image != res.Image {
			t.Errorf("run %d: Deployment image %v (%v); want %s", i+1, d.Spec.Template.Spec.Containers[0].Image, err, res.Image)
		}
	}
}
