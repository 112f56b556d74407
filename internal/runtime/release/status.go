package release

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/naming"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Status is an application's release state in a cluster.
type Status struct {
	App, Namespace string
	// Container is the container releases change (the release's, else the last release's, else the only one or
	// the one named like the application); StableImage and CanaryImage are its images.
	Container                string
	StableImage, CanaryImage string
	// Containers lists every container of the stable Deployment as name=image, when none is the released one.
	Containers []string
	Holder     string // the release holding the lock, "" when none
	Expires    time.Time
	InProgress *State
	// Answer is the answer to the approval gate of the release in progress, when someone gave one.
	Answer *Approval
	Last   *Outcome
}

// ReadStatus reads it, read-only: the stable and canary Deployments and the release Lease.
func ReadStatus(ctx context.Context, kube kubeclient.Interface, ns, app string) (*Status, error) {
	s := &Status{App: app, Namespace: ns}
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, app, metav1.GetOptions{})
	if err != nil {
		if p := step.NamespaceProblem(ctx, err, ns, "get deployments", kube.CoreV1().Namespaces()); p != nil {
			return nil, p
		}
		if apierrors.IsNotFound(err) {
			return nil, step.Invalid("APP", "give the name of the application's stable Deployment (oc get deploy -n "+ns+"), and --namespace", "Deployment %s/%s does not exist", ns, app)
		}
		return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, app, err)
	}
	lk := newLock(kube.CoordinationV1(), ns, app, "", time.Minute, nil)
	lease, st, last, err := lk.read(ctx)
	if err != nil {
		return nil, err
	}
	s.InProgress, s.Last = st, last
	switch {
	case st != nil:
		s.Container = st.Container
	case last != nil && last.Container != "":
		s.Container = last.Container
	default:
		s.Container, _, _ = pickContainer(d, "", app, "")
	}
	if s.Container != "" {
		s.StableImage = containerImage(d, s.Container)
	} else {
		for _, c := range d.Spec.Template.Spec.Containers {
			s.Containers = append(s.Containers, c.Name+"="+c.Image)
		}
	}
	if st != nil {
		c, err := kube.AppsV1().Deployments(ns).Get(ctx, st.names().CanaryDeployment, metav1.GetOptions{})
		switch {
		case err == nil && marked(c, naming.TrackCanary, st.ID):
			s.CanaryImage = containerImage(c, st.Container)
		case err != nil && !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("get Deployment %s/%s: %w", ns, st.names().CanaryDeployment, err)
		}
	}
	if a, ok := approvalOf(lease, idOf(st)); ok {
		s.Answer = &a
	}
	if lease != nil && lease.Spec.HolderIdentity != nil && !lk.expired(lease) {
		s.Holder = *lease.Spec.HolderIdentity
		s.Expires = lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	}
	return s, nil
}

// Write prints the status for people.
func (s *Status) Write(w io.Writer) {
	fmt.Fprintf(w, "application   %s/%s\n", s.Namespace, s.App)
	if s.Container != "" {
		fmt.Fprintf(w, "container     %s\n", s.Container)
		fmt.Fprintf(w, "stable image  %s\n", s.StableImage)
	} else {
		fmt.Fprintf(w, "containers    %s (releases choose one: the CONTAINER param)\n", strings.Join(s.Containers, ", "))
	}
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
	if a := s.Answer; a != nil {
		fmt.Fprintf(w, "approval      %s at %s\n", a, a.At.Format(time.RFC3339))
	}
	if o := s.Last; o != nil {
		fmt.Fprintf(w, "last release  %s: %s at %s; stable %s\n", o.ID, o.Decision, o.FinishedAt.Format(time.RFC3339), o.StableImage)
		if o.Reason != "" {
			fmt.Fprintf(w, "              reason: %s\n", o.Reason)
		}
	}
}

// idOf is the id of the release st records, "" for none.
func idOf(st *State) string {
	if st == nil {
		return ""
	}
	return st.ID
}
