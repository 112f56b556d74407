package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// versioned is a fake clientset whose Leases have resource versions, checked on update as the API server does (the
// fake alone does not): a write from a stale read is a Conflict.
func versioned(objs ...runtime.Object) *kubefake.Clientset {
	kube := kubefake.NewSimpleClientset(objs...)
	gvr := coordinationv1.SchemeGroupVersion.WithResource("leases")
	bump := func(v string) string { n, _ := strconv.Atoi(v); return strconv.Itoa(n + 1) }
	kube.PrependReactor("create", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.CreateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		l.Namespace, l.ResourceVersion = a.GetNamespace(), "1"
		return true, l, kube.Tracker().Create(gvr, l, l.Namespace)
	})
	kube.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease).DeepCopy()
		l.Namespace = a.GetNamespace()
		cur, err := kube.Tracker().Get(gvr, l.Namespace, l.Name)
		if err != nil {
			return true, nil, err
		}
		have := cur.(*coordinationv1.Lease).ResourceVersion
		if l.ResourceVersion != "" && l.ResourceVersion != have {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), l.Name, errors.New("the object has been modified"))
		}
		l.ResourceVersion = bump(have)
		return true, l, kube.Tracker().Update(gvr, l, l.Namespace)
	})
	return kube
}

// takeLease makes the Lease held by holder, as another release taking over an expired lock does.
func takeLease(t *testing.T, kube *kubefake.Clientset, holder string) {
	t.Helper()
	ctx := context.Background()
	l, err := kube.CoordinationV1().Leases("team").Get(ctx, "canaryline-shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.HolderIdentity, l.Spec.RenewTime = &holder, &now
	if _, err := kube.CoordinationV1().Leases("team").Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func untilDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the step's context did not end although its lock was taken")
	}
}

// TestKeepStopsTheStepWhenItsLockIsTaken: a renewal that finds the Lease held by another release ends the step's
// context with a BusyError (exit 5) naming the new holder.
func TestKeepStopsTheStepWhenItsLockIsTaken(t *testing.T) {
	kube := versioned()
	lk := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", "release-a", 30*time.Millisecond, quiet)
	if _, err := lk.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, stop := lk.keep(context.Background())
	defer stop()
	takeLease(t, kube, "release-b")
	untilDone(t, ctx)
	err := lostLock(ctx, ctx.Err())
	var busy *step.BusyError
	if !errors.As(err, &busy) || step.ExitCode(err) != step.ExitBusy || !strings.Contains(err.Error(), "release release-b") {
		t.Errorf("got %v; want a BusyError naming release-b", err)
	}
}

// TestHoldRelease: verify-health holds the lock of its own release in progress, refuses to run under another's,
// and runs without a lock when no release is in progress.
func TestHoldRelease(t *testing.T) {
	ctx := context.Background()
	t.Run("no release in progress", func(t *testing.T) {
		kube := versioned()
		h, hctx, err := HoldRelease(ctx, kubeclienttest.Wrap(kube), "team", "shop", "release-a", quiet)
		if err != nil || hctx != ctx || h.Check(ctx, hctx) != nil {
			t.Errorf("got %v; want nothing held", err)
		}
	})
	record := func(kube *kubefake.Clientset, holder string, ttl time.Duration) {
		lk := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", holder, ttl, quiet)
		if _, err := lk.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lk.save(ctx, &State{ID: holder, App: "shop", Phase: PhaseShifting}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("another release holds the lock", func(t *testing.T) {
		kube := versioned()
		record(kube, "release-b", time.Minute)
		_, _, err := HoldRelease(ctx, kubeclienttest.Wrap(kube), "team", "shop", "release-a", quiet)
		if step.ExitCode(err) != step.ExitBusy || !strings.Contains(err.Error(), "release-b") {
			t.Errorf("got %v; want exit 5 naming release-b", err)
		}
	})
	t.Run("its own release: renewed, and lost when taken", func(t *testing.T) {
		kube := versioned()
		record(kube, "release-a", time.Second) // renewed every third of a second
		h, hctx, err := HoldRelease(ctx, kubeclienttest.Wrap(kube), "team", "shop", "release-a", quiet)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Stop()
		first := lease(t, kube).Spec.RenewTime.Time
		deadline := time.Now().Add(10 * time.Second)
		for !lease(t, kube).Spec.RenewTime.After(first) {
			if time.Now().After(deadline) {
				t.Fatal("the lock was not renewed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := h.Check(ctx, hctx); err != nil {
			t.Errorf("check while held: %v", err)
		}
		takeLease(t, kube, "release-b")
		untilDone(t, hctx)
		if err := h.Check(ctx, hctx); step.ExitCode(err) != step.ExitBusy || !strings.Contains(err.Error(), "release-b") {
			t.Errorf("check after the takeover: %v; want exit 5 naming release-b", err)
		}
	})
}

func lease(t *testing.T, kube *kubefake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := kube.CoordinationV1().Leases("team").Get(context.Background(), "canaryline-shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestAReleaseIDIsUsedOnce: the Lease remembers the ids of the last releases, and a finished one is known as ended.
func TestAReleaseIDIsUsedOnce(t *testing.T) {
	ctx := context.Background()
	kube := versioned()
	for i := range historySize + 5 {
		id := fmt.Sprintf("release-%d", i)
		lk := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", id, time.Minute, quiet)
		if _, err := lk.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lk.finish(ctx, Outcome{ID: id, Decision: DecisionPromote}); err != nil {
			t.Fatal(err)
		}
	}
	l := lease(t, kube)
	if got, ok := ended(l, "release-54"); !ok || got != DecisionPromote {
		t.Errorf("the last release: %q %v", got, ok)
	}
	if got, ok := ended(l, "release-10"); !ok || got != DecisionPromote {
		t.Errorf("an earlier release: %q %v", got, ok)
	}
	if _, ok := ended(l, "release-2"); ok {
		t.Errorf("the history holds more than %d releases", historySize)
	}
	if _, ok := ended(l, "release-new"); ok {
		t.Error("a new id counts as ended")
	}
}

// TestALeaseNotMadeByCanarylineIsNeverUsed: a Lease named like the release lock that canaryline did not make is
// bad input naming it, and never changed.
func TestALeaseNotMadeByCanarylineIsNeverUsed(t *testing.T) {
	kube := versioned(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "canaryline-shop", Namespace: "team"}})
	lk := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", "release-a", time.Minute, quiet)
	_, _, _, err := lk.read(context.Background())
	var inv *step.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "Lease team/canaryline-shop exists and was not made by canaryline") {
		t.Errorf("got %v", err)
	}
}
