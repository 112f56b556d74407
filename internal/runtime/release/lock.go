package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Annotations on the release Lease.
const (
	// StateAnnotation holds the release in progress (State, JSON).
	StateAnnotation = "canaryline.dev/release-state"
	// LastAnnotation holds the outcome of the last release (Outcome, JSON).
	LastAnnotation = "canaryline.dev/last-release"
	// HistoryAnnotation holds the ids and decisions of the last releases ("id=decision", JSON list, newest last),
	// so that a release id is used once.
	HistoryAnnotation = "canaryline.dev/release-history"
)

// historySize is how many ended releases the Lease remembers.
const historySize = 50

// history is the ended releases the Lease records, oldest first, as "id=decision".
func history(lease *coordinationv1.Lease) []string {
	var h []string
	if v := lease.Annotations[HistoryAnnotation]; v != "" {
		_ = json.Unmarshal([]byte(v), &h)
	}
	return h
}

// ended says whether release id ended already, and how (its decision), as the Lease records it.
func ended(lease *coordinationv1.Lease, id string) (string, bool) {
	if _, out, err := decode(lease); err == nil && out != nil && out.ID == id {
		return out.Decision, true
	}
	for _, e := range history(lease) {
		if got, decision, _ := strings.Cut(e, "="); got == id {
			return decision, true
		}
	}
	return "", false
}

// State is a release in progress: enough for any later step, or a rerun, to continue it or undo it.
type State struct {
	ID          string `json:"id"`
	App         string `json:"app"`
	Image       string `json:"image"`
	Container   string `json:"container"`
	StableImage string `json:"stableImage"`
	Router      string `json:"router"`
	RouterName  string `json:"routerName,omitempty"`
	// RouterSnapshot is the router object's state before the release.
	RouterSnapshot string `json:"routerSnapshot"`
	StableService  string `json:"stableService"`
	// StableSelector is the stable Service's selector before the release.
	StableSelector map[string]string `json:"stableSelector"`
	Baseline       bool              `json:"baseline,omitempty"`
	// Names are the canary's (and baseline's) Deployment and Service; UIDs the objects the release created, by
	// "Kind/name", so that removing them deletes exactly those.
	Names       Names             `json:"names"`
	UIDs        map[string]string `json:"uids,omitempty"`
	KeepCookies bool              `json:"keepCookies,omitempty"`
	// TrackPods says the canary's pods carry the track label (REUSE_CANARY=false): its selector has it too.
	TrackPods bool `json:"trackPods,omitempty"`
	// CanaryHash is the pod-template-hash of the canary's pods, which its Service selects; CanarySpec the
	// canary Deployment's spec hash it was read for.
	CanaryHash string `json:"canaryHash,omitempty"`
	CanarySpec string `json:"canarySpec,omitempty"`
	// Promotion is how the release is promoted, chosen when promotion starts: promoteAdopt or promoteRollOut.
	Promotion string `json:"promotion,omitempty"`
	Weight    int32  `json:"weight"`
	// Phase is shifting, promoting or rolling-back; Done lists the finished parts of promoting or rolling back.
	Phase     string    `json:"phase"`
	Done      []string  `json:"done,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Phases of a release.
const (
	PhaseShifting    = "shifting"
	PhasePromoting   = "promoting"
	PhaseRollingBack = "rolling-back"
)

func (s *State) done(part string) bool {
	for _, d := range s.Done {
		if d == part {
			return true
		}
	}
	return false
}

// Outcome is how the last release ended.
type Outcome struct {
	ID          string    `json:"id"`
	Decision    string    `json:"decision"`
	Container   string    `json:"container,omitempty"`
	StableImage string    `json:"stableImage"`
	Reason      string    `json:"reason,omitempty"`
	FinishedAt  time.Time `json:"finishedAt"`
}

// lock is the application's release Lease: one release at a time. Its holder is the release id; a holder that
// stops renewing (a crashed run) loses it after the lease duration.
type lock struct {
	leases kubeclient.LeaseInterface
	name   string
	holder string
	ttl    time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	lease *coordinationv1.Lease // as last read or written
	// renew is what each renewal writes besides the renew time (nil: nothing); under renewMu.
	renewMu sync.Mutex
	renew   func(*coordinationv1.Lease)
	// read is the Lease as read() found it (nil: none), for acquire's first attempt: one read fewer.
	read1     *coordinationv1.Lease
	haveRead1 bool
}

func leaseName(app string) string { return "canaryline-" + app }

// The label that marks the release Leases as canaryline's.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "canaryline"
)

func newLock(c kubeclient.LeasesGetter, ns, app, holder string, ttl time.Duration, log *slog.Logger) *lock {
	return &lock{leases: c.Leases(ns), name: leaseName(app), holder: holder, ttl: ttl, log: log, now: time.Now}
}

// read returns the Lease (nil when there is none) and its release state.
func (l *lock) read(ctx context.Context) (*coordinationv1.Lease, *State, *Outcome, error) {
	lease, err := l.leases.Get(ctx, l.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l.read1, l.haveRead1 = nil, true
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("get Lease %s: %w", l.name, err)
	}
	if lease.Labels[managedByLabel] != managedBy {
		return nil, nil, nil, step.Invalid("APP", fmt.Sprintf("canaryline keeps one Lease per application, named %s: delete that Lease if it is left "+
			"over (oc delete lease %s -n %s), or release the application under another name", l.name, l.name, lease.Namespace),
			"Lease %s/%s exists and was not made by canaryline (no %s=%s label): it is never changed", lease.Namespace, l.name, managedByLabel, managedBy)
	}
	l.read1, l.haveRead1 = lease.DeepCopy(), true
	st, out, err := decode(lease)
	return lease, st, out, err
}

// readForAcquire is the Lease read just before (once), else read again.
func (l *lock) readForAcquire(ctx context.Context) (*coordinationv1.Lease, *State, error) {
	if l.haveRead1 {
		l.haveRead1 = false
		if l.read1 == nil {
			return nil, nil, nil
		}
		st, _, err := decode(l.read1)
		return l.read1, st, err
	}
	lease, st, _, err := l.read(ctx)
	l.haveRead1 = false
	return lease, st, err
}

func decode(lease *coordinationv1.Lease) (*State, *Outcome, error) {
	var st *State
	var out *Outcome
	if v := lease.Annotations[StateAnnotation]; v != "" {
		st = &State{}
		if err := json.Unmarshal([]byte(v), st); err != nil {
			return nil, nil, fmt.Errorf("read the release state on Lease %s: %w", lease.Name, err)
		}
	}
	if v := lease.Annotations[LastAnnotation]; v != "" {
		out = &Outcome{}
		if err := json.Unmarshal([]byte(v), out); err != nil {
			out = nil
		}
	}
	return st, out, nil
}

func (l *lock) expired(lease *coordinationv1.Lease) bool {
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" || lease.Spec.RenewTime == nil || lease.Spec.LeaseDurationSeconds == nil {
		return true
	}
	return l.now().After(lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second))
}

// busy is a BusyError naming the holder when another release holds the lock, read-only.
func (l *lock) busy(lease *coordinationv1.Lease) error {
	if lease == nil || l.expired(lease) || *lease.Spec.HolderIdentity == l.holder {
		return nil
	}
	holder := *lease.Spec.HolderIdentity
	expires := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	return &step.BusyError{Msg: fmt.Sprintf("another release of %s is in progress: Lease %s is held by %q "+
		"(renewed %s, expires in %s); wait for it to finish, or end it with promote-or-rollback RELEASE_ID=%s",
		strings.TrimPrefix(l.name, "canaryline-"), l.name, holder, lease.Spec.RenewTime.Format(time.RFC3339),
		time.Until(expires).Round(time.Second), holder)}
}

// acquire takes the lock for l.holder, or renews it. It fails fast with a BusyError naming the holder when another
// release holds it. It returns the state found on the Lease (possibly another, abandoned release's).
func (l *lock) acquire(ctx context.Context) (*State, error) {
	for attempt := 0; ; attempt++ {
		lease, st, err := l.readForAcquire(ctx)
		if err != nil {
			return nil, err
		}
		now := metav1.NewMicroTime(l.now())
		secs := int32(l.ttl.Seconds())
		if lease == nil {
			lease = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: l.name, Labels: map[string]string{managedByLabel: managedBy}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &l.holder, LeaseDurationSeconds: &secs,
					AcquireTime: &now, RenewTime: &now},
			}
			created, err := l.leases.Create(ctx, lease, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) && attempt < 5 {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create Lease %s: %w", l.name, err)
			}
			l.lease = created
			return nil, nil
		}
		holder := ""
		if lease.Spec.HolderIdentity != nil {
			holder = *lease.Spec.HolderIdentity
		}
		if err := l.busy(lease); err != nil {
			return nil, err
		}
		if holder == l.holder && lease.Spec.RenewTime != nil && l.now().Sub(lease.Spec.RenewTime.Time) < l.ttl/3 {
			// Ours, and renewed moments ago (an earlier step of this release): keep renews it from here on.
			l.lease = lease
			return st, nil
		}
		if holder != l.holder {
			if holder != "" {
				l.log.Warn("taking over an expired release lock", "lease", l.name, "holder", holder, "renewed", lease.Spec.RenewTime)
			}
			lease.Spec.AcquireTime = &now
		}
		lease.Spec.HolderIdentity, lease.Spec.RenewTime, lease.Spec.LeaseDurationSeconds = &l.holder, &now, &secs
		updated, err := l.leases.Update(ctx, lease, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) && attempt < 5 {
			continue // someone else moved first: look again
		}
		if err != nil {
			return nil, fmt.Errorf("take Lease %s: %w", l.name, err)
		}
		l.lease = updated
		return st, nil
	}
}

// save writes the release state to the Lease, renewing it. The lock must be held.
func (l *lock) save(ctx context.Context, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return l.update(ctx, func(lease *coordinationv1.Lease) {
		lease.Annotations[StateAnnotation] = string(data)
	})
}

// update applies mutate to the Lease, checking first that it is still ours.
func (l *lock) update(ctx context.Context, mutate func(*coordinationv1.Lease)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for attempt := 0; ; attempt++ {
		lease := l.lease.DeepCopy()
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != l.holder {
			return l.lost(lease)
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		now := metav1.NewMicroTime(l.now())
		lease.Spec.RenewTime = &now
		mutate(lease)
		updated, err := l.leases.Update(ctx, lease, metav1.UpdateOptions{})
		if err == nil {
			l.lease = updated
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 5 {
			return fmt.Errorf("update Lease %s: %w", l.name, err)
		}
		fresh, gerr := l.leases.Get(ctx, l.name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("get Lease %s: %w", l.name, gerr)
		}
		l.lease = fresh
	}
}

// lost is the BusyError of a release whose lock another release (or none) holds now.
func (l *lock) lost(lease *coordinationv1.Lease) error {
	holder := "no release (it was released)"
	if lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
		holder = "release " + *lease.Spec.HolderIdentity
	}
	return &step.BusyError{Msg: fmt.Sprintf("release %s lost its lock: Lease %s/%s is held by %s now (it was not renewed within its "+
		"LOCK_TTL, and was taken over); this step stops and leaves the application to that release", l.holder, lease.Namespace, l.name, holder)}
}

// keep renews the lock in the background every third of its duration until stop is called. The context it returns
// ends when the lock is lost to another release (a renewal finds the Lease held by another): its cause is then a
// BusyError naming the new holder, so that the step stops at once rather than act on another release's objects.
func (l *lock) keep(ctx context.Context) (context.Context, func()) {
	kctx, lose := context.WithCancelCause(ctx)
	rctx, stopRenewing := context.WithCancel(kctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				mutate := l.renewal()
				if mutate == nil {
					mutate = func(*coordinationv1.Lease) {}
				}
				err := l.update(rctx, mutate)
				var busy *step.BusyError
				switch {
				case errors.As(err, &busy):
					l.log.Error(busy.Msg)
					lose(busy)
					return
				case err != nil && !errors.Is(err, context.Canceled):
					l.log.Warn("could not renew the release lock", "lease", l.name, "error", err)
				}
			}
		}
	}()
	return kctx, func() { stopRenewing(); <-done; lose(nil) }
}

func (l *lock) setRenewal(f func(*coordinationv1.Lease)) {
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	l.renew = f
}

func (l *lock) renewal() func(*coordinationv1.Lease) {
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	return l.renew
}

// lostLock is the BusyError that ended ctx when the lock was lost, else err.
func lostLock(ctx context.Context, err error) error {
	var busy *step.BusyError
	if c := context.Cause(ctx); err != nil && errors.As(c, &busy) {
		return c
	}
	return err
}

// finish ends the release: the outcome is recorded, the state removed and the lock released.
func (l *lock) finish(ctx context.Context, out Outcome) error {
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	err = l.update(ctx, func(lease *coordinationv1.Lease) {
		h := append(history(lease), out.ID+"="+out.Decision)
		if len(h) > historySize {
			h = h[len(h)-historySize:]
		}
		hist, _ := json.Marshal(h)
		lease.Annotations[HistoryAnnotation] = string(hist)
		lease.Annotations[LastAnnotation] = string(data)
		delete(lease.Annotations, StateAnnotation)
		delete(lease.Annotations, naming.VerifyStateAnnotation)
		delete(lease.Annotations, ApprovalAnnotation)
		empty := ""
		lease.Spec.HolderIdentity = &empty
	})
	var busy *step.BusyError
	if errors.As(err, &busy) && l.finished() {
		return nil // an earlier attempt took effect, though its answer was lost
	}
	return err
}

// finished says whether the Lease, as last read, records this release as ended.
func (l *lock) finished() bool {
	st, out, err := decode(l.lease)
	return err == nil && st == nil && out != nil && out.ID == l.holder
}
