// Package naming holds the naming rules that the steps, the tools and the tests share: the names of the objects a
// release creates next to the stable ones, the tracks and the label that marks them, the label that tells the
// pods of a Deployment's current ReplicaSet, and the words of verify-health's verdicts and NO_DATA policies.
// It is a leaf package: it imports no other package of canaryline.
package naming

import (
	appsv1 "k8s.io/api/apps/v1"
)

// Suffixes of the objects a release creates next to the stable ones, when they are not named otherwise.
const (
	CanarySuffix   = "-canary"
	BaselineSuffix = "-baseline"
)

// Canary is the name of the canary object next to stable object name: name-canary.
func Canary(name string) string { return name + CanarySuffix }

// Baseline is the name of the baseline object next to stable object name: name-baseline.
func Baseline(name string) string { return name + BaselineSuffix }

// Tracks: the versions that run side by side during a release.
const (
	TrackCanary   = "canary"
	TrackBaseline = "baseline"
	TrackStable   = "stable"
)

// TrackLabel marks the Deployments, Services and pods that a release creates with their track.
const TrackLabel = "canaryline.dev/track"

// PodTemplateHashLabel is the label that a Deployment puts on its ReplicaSets and their pods: the hash of the pod
// template they run.
const PodTemplateHashLabel = appsv1.DefaultDeploymentUniqueLabelKey

// RevisionAnnotation is the revision of a Deployment, and of the ReplicaSet that runs that revision.
const RevisionAnnotation = "deployment.kubernetes.io/revision"

// CurrentHash is the pod-template-hash of d's current ReplicaSet among rss: the one that d owns at its revision
// and that carries the label ("" when there is none).
func CurrentHash(d *appsv1.Deployment, rss []appsv1.ReplicaSet) string {
	if rs := CurrentReplicaSet(d, rss); rs != nil {
		return rs.Labels[PodTemplateHashLabel]
	}
	return ""
}

// CurrentReplicaSet is the ReplicaSet of rss that d owns and that runs d's current revision (nil when none). Its
// name is not always d's name and the hash: a Deployment that took over a canary's ReplicaSet keeps its name.
func CurrentReplicaSet(d *appsv1.Deployment, rss []appsv1.ReplicaSet) *appsv1.ReplicaSet {
	rev := d.Annotations[RevisionAnnotation]
	for i, rs := range rss {
		if rs.Annotations[RevisionAnnotation] == rev && ownedBy(&rs, d) && rs.Labels[PodTemplateHashLabel] != "" {
			return &rss[i]
		}
	}
	return nil
}

func ownedBy(rs *appsv1.ReplicaSet, d *appsv1.Deployment) bool {
	for _, o := range rs.OwnerReferences {
		if o.UID == d.UID {
			return true
		}
	}
	return false
}

// Verdicts of verify-health (its VERDICT result, promote-or-rollback's VERDICT param).
const (
	Healthy      = "healthy"
	Unhealthy    = "unhealthy"
	Inconclusive = "inconclusive"
)

// Policies of verify-health's NO_DATA param: what a check with nothing to measure counts as.
const (
	NoDataInconclusive = Inconclusive
	NoDataFail         = "fail"
	NoDataPass         = "pass"
)

// Modes of verify-health's STATISTICS param: how comparisons decide.
const (
	StatsSequential = "sequential"
	StatsFixed      = "fixed"
)

// VerifyStateAnnotation on the release Lease holds the sequential tests' data of the release in progress, carried
// from one verify-health step to the next (and to a rerun), so that a release spends one error budget.
const VerifyStateAnnotation = "canaryline.dev/verify-state"
