package release

import (
	"context"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/kubeclient"
)

// Status is an application's release state in a cluster.
type Status struct {
	App, Namespace           string
	StableImage, CanaryImage string
	Holder                   string // the release holding the lock, "" when none
	Expires                  time.Time
	InProgress               *State
	Last                     *Outcome
}

// ReadStatus reads it, read-only: the stable and canary Deployments and the release Lease.
func ReadStatus(ctx context.Context, kube kubeclient.Interface, ns, app string) (*Status, error) {
	s := &Status{App: app, Namespace: ns}
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, app, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, app, err)
	}
	s.StableImage = d.Spec.Template.Spec.Containers[0].Image
	if c, err := kube.AppsV1().Deployments(ns).Get(ctx, canaryName(app), metav1.GetOptions{}); err == nil {
		s.CanaryImage = c.Spec.Template.Spec.Containers[0].Image
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, canaryName(app), err)
	}
	lk := newLock(kube.CoordinationV1(), ns, app, "", time.Minute, nil)
	lease, st, last, err := lk.read(ctx)
	if err != nil {
		return nil, err
	}
	s.InProgress, s.Last = st, last
	if lease != nil && lease.Spec.HolderIdentity != nil && !lk.expired(lease) {
		s.Holder = *lease.Spec.HolderIdentity
		s.Expires = lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	}
	return s, nil
}

// Write prints the status for people.
func (s *Status) Write(w io.Writer) {
	fmt.Fprintf(w, "application   %s/%s\n", s.Namespace, s.App)
	fmt.Fprintf(w, "stable image  %s\n", s.StableImage)
	if s.CanaryImage != "" {
		fmt.Fprintf(w, "canary image  %s\n", s.CanaryImage)
	}
	switch {
	case s.Holder != "":
		fmt.Fprintf(w, "lock          held by %s until %s\n", s.Holder, s.Expires.Format(time.RFC3339))
	case s.InProgress != nil:
		fmt.Fprintf(w, "lock          expired: release %s was abandoned (the next release rolls it back)\n", s.InProgress.ID)
	default:
		fmt.Fprintln(w, "lock          free")
	}
	if st := s.InProgress; st != nil {
		fmt.Fprintf(w, "in progress   release %s, %s, canary weight %d%% via %s/%s, started %s\n", st.ID, st.Phase, st.Weight,
			st.Router, st.RouterName, st.StartedAt.Format(time.RFC3339))
	}
	if o := s.Last; o != nil {
		fmt.Fprintf(w, "last release  %s: %s at %s; stable %s\n", o.ID, o.Decision, o.FinishedAt.Format(time.RFC3339), o.StableImage)
		if o.Reason != "" {
			fmt.Fprintf(w, "              reason: %s\n", o.Reason)
		}
	}
}
