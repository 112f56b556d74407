package release

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// lockAt is the lock of release holder on shop's Lease in namespace team, whose clock says *now.
func lockAt(kube *kubefake.Clientset, holder string, ttl time.Duration, now *time.Time) *lock {
	lk := newLock(kubeclienttest.Wrap(kube).CoordinationV1(), "team", "shop", holder, ttl, quiet)
	lk.now = func() time.Time { return *now }
	return lk
}

// leaseWrites counts the create and update requests on Leases the fake received.
func leaseWrites(kube *kubefake.Clientset) int {
	n := 0
	for _, a := range kube.Actions() {
		if a.GetResource().Resource == "leases" && (a.GetVerb() == "create" || a.GetVerb() == "update" || a.GetVerb() == "delete") {
			n++
		}
	}
	return n
}

// failUpdates makes the next n updates of Leases fail with err (n < 0: every one), and counts the attempts.
func failUpdates(kube *kubefake.Clientset, n int, err error) *int {
	attempts := new(int)
	kube.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		*attempts++
		if n != 0 {
			n--
			return true, nil, err
		}
		return false, nil, nil
	})
	return attempts
}

func conflict() error {
	return apierrors.NewConflict(coordinationv1.Resource("leases"), "canaryline-shop", errors.New("the object has been modified"))
}

// TestAcquire: the first release creates the Lease, marked as canaryline's and held by it for LOCK_TTL; the
// same release acquiring again moments later (a later step) writes nothing; later than a third of the TTL, it
// renews the Lease and keeps its acquire time.
func TestAcquire(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	kube := versioned()
	if found, err := lockAt(kube, "run-1", time.Minute, &now).acquire(ctx); err != nil || found != nil {
		t.Fatalf("acquire: %v, found %+v; want a new lock and no release found", err, found)
	}
	l := lease(t, kube)
	if l.Labels[managedByLabel] != managedBy || *l.Spec.HolderIdentity != "run-1" || *l.Spec.LeaseDurationSeconds != 60 ||
		!l.Spec.AcquireTime.Time.Equal(now) || !l.Spec.RenewTime.Time.Equal(now) {
		t.Fatalf("Lease %+v %+v; want canaryline's, held by run-1 for 60s from %s", l.Labels, l.Spec, now)
	}

	kube.ClearActions()
	now = now.Add(10 * time.Second)
	if _, err := lockAt(kube, "run-1", time.Minute, &now).acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if n := leaseWrites(kube); n != 0 {
		t.Errorf("acquiring again 10s later made %d writes; want none (the holder renews it)", n)
	}

	now = now.Add(30 * time.Second)
	if _, err := lockAt(kube, "run-1", time.Minute, &now).acquire(ctx); err != nil {
		t.Fatal(err)
	}
	l = lease(t, kube)
	if !l.Spec.RenewTime.Time.Equal(now) || !l.Spec.AcquireTime.Time.Equal(now.Add(-40*time.Second)) || *l.Spec.HolderIdentity != "run-1" {
		t.Errorf("Lease after 40s: renewed %s, acquired %s, holder %s; want renewed now, acquired 40s ago, held by run-1",
			l.Spec.RenewTime, l.Spec.AcquireTime, *l.Spec.HolderIdentity)
	}
}

// TestAcquireRefusesWhileAnotherReleaseHoldsIt: another release's live lock is a BusyError (exit 5) naming it,
// and nothing is written.
func TestAcquireRefusesWhileAnotherReleaseHoldsIt(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	kube := versioned()
	if _, err := lockAt(kube, "run-1", time.Minute, &now).acquire(ctx); err != nil {
		t.Fatal(err)
	}
	kube.ClearActions()
	now = now.Add(59 * time.Second)
	_, err := lockAt(kube, "run-2", time.Minute, &now).acquire(ctx)
	var busy *step.BusyError
	if !errors.As(err, &busy) || step.ExitCode(err) != step.ExitBusy || !strings.Contains(err.Error(), `held by "run-1"`) ||
		!strings.Contains(err.Error(), "RELEASE_ID=run-1") {
		t.Errorf("got %v; want a BusyError naming run-1 and how to end it", err)
	}
	if n := leaseWrites(kube); n != 0 {
		t.Errorf("%d writes; want none", n)
	}
}

// TestAcquireTakesOverAnAbandonedRelease: once the holder has not renewed the lock for LOCK_TTL (a crashed run),
// another release takes it over, and is handed the abandoned release's state to roll it back.
func TestAcquireTakesOverAnAbandonedRelease(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	kube := versioned()
	old := lockAt(kube, "run-1", time.Minute, &now)
	if _, err := old.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.save(ctx, &State{ID: "run-1", App: "shop", Weight: 20, Phase: PhaseShifting}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(61 * time.Second)
	found, err := lockAt(kube, "run-2", time.Minute, &now).acquire(ctx)
	if err != nil {
		t.Fatalf("take over: %v", err)
	}
	if found == nil || found.ID != "run-1" || found.Weight != 20 {
		t.Errorf("found %+v; want the abandoned release run-1 at 20%%", found)
	}
	l := lease(t, kube)
	if *l.Spec.HolderIdentity != "run-2" || !l.Spec.AcquireTime.Time.Equal(now) || l.Annotations[StateAnnotation] == "" {
		t.Errorf("Lease held by %s, acquired %s, state %q; want run-2 from now, the abandoned state kept until it is rolled back",
			*l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Annotations[StateAnnotation])
	}
}

// TestANonHolderCannotWriteOrRelease: a release whose lock was taken over cannot save its state or finish
// (release the lock): its stale write conflicts, the Lease is read again, and it is refused with a BusyError
// naming the holder, which keeps the lock.
func TestANonHolderCannotWriteOrRelease(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	kube := versioned()
	a := lockAt(kube, "run-1", time.Minute, &now)
	if _, err := a.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	takeLease(t, kube, "run-2")
	for name, write := range map[string]func() error{
		"save":   func() error { return a.save(ctx, &State{ID: "run-1", Phase: PhaseShifting}) },
		"finish": func() error { return a.finish(ctx, Outcome{ID: "run-1", Decision: DecisionRollback}) },
	} {
		err := write()
		if step.ExitCode(err) != step.ExitBusy || !strings.Contains(err.Error(), "release run-1 lost its lock") || !strings.Contains(err.Error(), "release run-2") {
			t.Errorf("%s: %v; want exit 5 saying run-1 lost its lock to run-2", name, err)
		}
	}
	l := lease(t, kube)
	if *l.Spec.HolderIdentity != "run-2" || l.Annotations[StateAnnotation] != "" || l.Annotations[LastAnnotation] != "" {
		t.Errorf("Lease held by %s, annotations %v; want run-2's, untouched", *l.Spec.HolderIdentity, l.Annotations)
	}
}

// TestUpdateConflicts: a conflicting update is tried again from a fresh read; one that keeps conflicting ends
// with an error naming the Lease, after a bounded number of attempts.
func TestUpdateConflicts(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	t.Run("a passing conflict is retried", func(t *testing.T) {
		kube := versioned()
		lk := lockAt(kube, "run-1", time.Minute, &now)
		if _, err := lk.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		attempts := failUpdates(kube, 2, conflict())
		if err := lk.save(ctx, &State{ID: "run-1", Phase: PhaseShifting}); err != nil {
			t.Fatalf("save: %v", err)
		}
		if *attempts != 3 || !strings.Contains(lease(t, kube).Annotations[StateAnnotation], `"id":"run-1"`) {
			t.Errorf("%d attempts, state %q; want the third to write the state", *attempts, lease(t, kube).Annotations[StateAnnotation])
		}
	})
	t.Run("a lasting conflict is an error", func(t *testing.T) {
		kube := versioned()
		lk := lockAt(kube, "run-1", time.Minute, &now)
		if _, err := lk.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		attempts := failUpdates(kube, -1, conflict())
		err := lk.save(ctx, &State{ID: "run-1", Phase: PhaseShifting})
		if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "update Lease canaryline-shop") || *attempts != 6 {
			t.Errorf("got %v after %d attempts; want a conflict naming the Lease after 6", err, *attempts)
		}
	})
	t.Run("acquire looks again after a conflict", func(t *testing.T) {
		kube := versioned()
		then := now.Add(-2 * time.Minute)
		if _, err := lockAt(kube, "run-1", time.Minute, &then).acquire(ctx); err != nil {
			t.Fatal(err)
		}
		attempts := failUpdates(kube, 1, conflict())
		if _, err := lockAt(kube, "run-2", time.Minute, &now).acquire(ctx); err != nil {
			t.Fatalf("acquire: %v", err)
		}
		if *attempts != 2 || *lease(t, kube).Spec.HolderIdentity != "run-2" {
			t.Errorf("%d attempts, holder %s; want run-2 on the second", *attempts, *lease(t, kube).Spec.HolderIdentity)
		}
	})
}
