package naming

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestNames: the names and words are the contract of the Tasks, the RBAC Role and the docs.
func TestNames(t *testing.T) {
	for _, n := range [][2]string{
		{Canary("shop"), "shop-canary"}, {Baseline("shop"), "shop-baseline"},
		{PodTemplateHashLabel, "pod-template-hash"}, {TrackLabel, "canaryline.dev/track"},
		{Healthy, "healthy"}, {Unhealthy, "unhealthy"}, {Inconclusive, "inconclusive"},
		{NoDataInconclusive, "inconclusive"}, {NoDataFail, "fail"}, {NoDataPass, "pass"},
	} {
		if got, want := n[0], n[1]; got != want {
			t.Errorf("got %q; want %q", got, want)
		}
	}
}

// TestCurrentHash: the hash is the one of the ReplicaSet the Deployment owns at its revision.
func TestCurrentHash(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{UID: "d1", Annotations: map[string]string{RevisionAnnotation: "3"}}}
	rs := func(uid types.UID, rev, hash string) appsv1.ReplicaSet {
		return appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{{UID: uid}},
			Annotations: map[string]string{RevisionAnnotation: rev}, Labels: map[string]string{PodTemplateHashLabel: hash}}}
	}
	for _, tc := range []struct {
		name string
		rss  []appsv1.ReplicaSet
		want string
	}{
		{"current among old", []appsv1.ReplicaSet{rs("d1", "2", "old"), rs("d1", "3", "cur")}, "cur"},
		{"another owner's", []appsv1.ReplicaSet{rs("d2", "3", "theirs")}, ""},
		{"no ReplicaSet at the revision", []appsv1.ReplicaSet{rs("d1", "2", "old")}, ""},
		{"none", nil, ""},
	} {
		if got := CurrentHash(d, tc.rss); got != tc.want {
			t.Errorf("%s: %q; want %q", tc.name, got, tc.want)
		}
	}
}
