package build

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	fakebuild "github.com/openshift/client-go/build/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// client-go's fakes send no initial-events bookmark, so the reflector behind untilDone must list and watch here
// rather than stream the list (client-go reads its feature gates from the environment once, at first use).
func init() { _ = os.Setenv("KUBE_FEATURE_WatchListClient", "false") }

// fakeBuilds is a client-go fake of the build API whose "controller" ends a build as Cancelled once
// status.cancelled is set, as the OpenShift build controller does.
func fakeBuilds(b *buildv1.Build) *fakebuild.Clientset {
	c := fakebuild.NewClientset(b)
	c.PrependReactor("update", "builds", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.UpdateAction).GetObject().(*buildv1.Build)
		if u.Status.Cancelled {
			u.Status.Phase = buildv1.BuildPhaseCancelled
		}
		return false, nil, nil
	})
	return c
}

func runningBuild() *buildv1.Build {
	return &buildv1.Build{ObjectMeta: metav1.ObjectMeta{Name: "app-1", Namespace: "team"},
		Status: buildv1.BuildStatus{Phase: buildv1.BuildPhaseRunning}}
}

// A stop (SIGTERM) that comes while wait-build still reads the build cancels the build as a stop in its watch
// does: the build may be running, and the step will not see it end.
func TestWaitCancelsTheBuildWhenStoppedBeforeItsWatch(t *testing.T) {
	c := fakeBuilds(runningBuild())
	ctx, stop := context.WithCancel(context.Background())
	first := true
	c.PrependReactor("get", "builds", func(k8stesting.Action) (bool, runtime.Object, error) {
		if first { // the stop lands during the first read
			first = false
			stop()
			return true, nil, context.Canceled
		}
		return false, nil, nil
	})
	cfg := &WaitConfig{Common: step.Common{}, BuildName: "app-1", Timeout: time.Minute, CancelOnStop: true}
	_, err := Wait(ctx, cfg, "team", Clients{Build: kubeclienttest.WrapBuild(c.BuildV1())}, io.Discard, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "the step was stopped: it is now Cancelled") {
		t.Errorf("Wait: %v; want the build cancelled because the step was stopped", err)
	}
	b, _ := c.BuildV1().Builds("team").Get(context.Background(), "app-1", metav1.GetOptions{})
	if !b.Status.Cancelled || b.Status.Phase != buildv1.BuildPhaseCancelled {
		t.Errorf("build cancelled=%v phase %s; want cancelled", b.Status.Cancelled, b.Status.Phase)
	}
}

// A build deleted while wait-build follows it is that failure, not a stop: nothing is cancelled.
func TestWaitReportsADeletedBuild(t *testing.T) {
	c := fakeBuilds(runningBuild())
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = c.BuildV1().Builds("team").Delete(context.Background(), "app-1", metav1.DeleteOptions{})
	}()
	cfg := &WaitConfig{BuildName: "app-1", Timeout: time.Minute, CancelOnStop: true}
	_, err := Wait(context.Background(), cfg, "team", Clients{Build: kubeclienttest.WrapBuild(c.BuildV1())}, io.Discard, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "was deleted before it ended") {
		t.Errorf("Wait: %v; want the deletion named", err)
	}
}
