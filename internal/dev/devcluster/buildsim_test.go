package devcluster

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testBuildConfig(strategy buildv1.BuildStrategy) *buildv1.BuildConfig {
	return &buildv1.BuildConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team", UID: "bc-uid", Labels: map[string]string{"app": "shop"}},
		Spec: buildv1.BuildConfigSpec{CommonSpec: buildv1.CommonSpec{
			Strategy: strategy,
			Output:   buildv1.BuildOutput{To: &corev1.ObjectReference{Kind: "ImageStreamTag", Name: "shop:latest"}},
		}},
		Status: buildv1.BuildConfigStatus{LastVersion: 7},
	}
}

func TestNewBuildAppliesTheRequest(t *testing.T) {
	t.Parallel()
	yes := true
	tests := []struct {
		name     string
		strategy buildv1.BuildStrategy
		req      buildv1.BuildRequest
		check    func(t *testing.T, b *buildv1.Build)
	}{{
		name: "source strategy: env merged, incremental, revision",
		strategy: buildv1.BuildStrategy{SourceStrategy: &buildv1.SourceBuildStrategy{
			Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "old"}}}},
		req: buildv1.BuildRequest{
			Env:                   []corev1.EnvVar{{Name: "B", Value: "new"}, {Name: "C", Value: "3"}},
			SourceStrategyOptions: &buildv1.SourceStrategyOptions{Incremental: &yes},
			Revision:              &buildv1.SourceRevision{Git: &buildv1.GitSourceRevision{Commit: "abc123"}},
		},
		check: func(t *testing.T, b *buildv1.Build) {
			want := []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "new"}, {Name: "C", Value: "3"}}
			if d := cmp.Diff(want, b.Spec.Strategy.SourceStrategy.Env); d != "" {
				t.Errorf("env (-want +got):\n%s", d)
			}
			if b.Spec.Strategy.SourceStrategy.Incremental == nil || !*b.Spec.Strategy.SourceStrategy.Incremental {
				t.Error("incremental not applied")
			}
			if b.Spec.Revision.Git.Commit != "abc123" {
				t.Errorf("revision %+v", b.Spec.Revision)
			}
		},
	}, {
		name:     "docker strategy: build args and no-cache",
		strategy: buildv1.BuildStrategy{DockerStrategy: &buildv1.DockerBuildStrategy{}},
		req: buildv1.BuildRequest{DockerStrategyOptions: &buildv1.DockerStrategyOptions{
			BuildArgs: []corev1.EnvVar{{Name: "VERSION", Value: "2"}}, NoCache: &yes}},
		check: func(t *testing.T, b *buildv1.Build) {
			ds := b.Spec.Strategy.DockerStrategy
			if !ds.NoCache || len(ds.BuildArgs) != 1 || ds.BuildArgs[0].Value != "2" {
				t.Errorf("docker strategy %+v", ds)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bc := testBuildConfig(tc.strategy)
			b := newBuild(bc, &tc.req)
			if b.Name != "shop-7" || b.Namespace != "team" || b.Status.Phase != buildv1.BuildPhaseNew {
				t.Errorf("build %s/%s phase %s; want team/shop-7 New", b.Namespace, b.Name, b.Status.Phase)
			}
			wantLabels := map[string]string{"app": "shop", buildv1.BuildConfigLabel: "shop", buildv1.BuildConfigLabelDeprecated: "shop",
				buildv1.BuildRunPolicyLabel: "Serial"}
			if d := cmp.Diff(wantLabels, b.Labels); d != "" {
				t.Errorf("labels (-want +got):\n%s", d)
			}
			if b.Annotations[buildv1.BuildNumberAnnotation] != "7" || b.Annotations[buildv1.BuildConfigAnnotation] != "shop" {
				t.Errorf("annotations %v", b.Annotations)
			}
			if b.Status.OutputDockerImageReference != InternalRegistry+"/team/shop:latest" {
				t.Errorf("output reference %q", b.Status.OutputDockerImageReference)
			}
			if len(b.OwnerReferences) != 1 || b.OwnerReferences[0].UID != "bc-uid" {
				t.Errorf("owner references %+v", b.OwnerReferences)
			}
			if bc.Spec.Strategy.SourceStrategy != nil && len(bc.Spec.Strategy.SourceStrategy.Env) != 2 {
				t.Error("the BuildConfig's own env was modified")
			}
			tc.check(t, b)
		})
	}
}

func TestLogOptions(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lines := []logLine{{t0, "a"}, {t0.Add(time.Second), "b"}, {t0.Add(2 * time.Second), "c"}}
	texts := func(ls []logLine) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.text)
		}
		return out
	}
	tests := []struct {
		query   string
		want    []string
		wantErr bool
	}{
		{"", []string{"a", "b", "c"}, false},
		{"tailLines=2", []string{"b", "c"}, false},
		{"sinceTime=2026-01-01T00:00:01Z", []string{"b", "c"}, false},
		{"sinceTime=2026-01-01T00:00:01Z&tailLines=1", []string{"c"}, false},
		{"tailLines=-1", nil, true},
		{"limitBytes=x", nil, true},
		{"sinceTime=yesterday", nil, true},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		o, err := parseLogOptions(q)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: error %v, want error %v", tc.query, err, tc.wantErr)
			continue
		}
		if err == nil {
			if d := cmp.Diff(tc.want, texts(o.filter(lines))); d != "" {
				t.Errorf("%q (-want +got):\n%s", tc.query, d)
			}
		}
	}
}

func TestBuildLogFollow(t *testing.T) {
	t.Parallel()
	l := newBuildLogs().get("uid")
	l.append("one")
	got, next, done, changed := l.since(0)
	if len(got) != 1 || next != 1 || done {
		t.Fatalf("since(0) = %v %d %v", got, next, done)
	}
	go func() { l.append("two"); l.finish(); l.append("ignored") }()
	<-changed
	for !done {
		var more []logLine
		more, next, done, changed = l.since(next)
		got = append(got, more...)
		if !done {
			<-changed
		}
	}
	if len(got) != 2 || got[1].text != "two" {
		t.Errorf("lines %v; want one, two and nothing after finish", got)
	}
}

func TestImageStreamTagFor(t *testing.T) {
	t.Parallel()
	is := &imagev1.ImageStream{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "team"},
		Status: imagev1.ImageStreamStatus{Tags: []imagev1.NamedTagEventList{{Tag: "latest", Items: []imagev1.TagEvent{
			{Image: "sha256:new", DockerImageReference: "r/team/shop@sha256:new"},
			{Image: "sha256:old", DockerImageReference: "r/team/shop@sha256:old"},
		}}}},
	}
	ist := imageStreamTagFor(is, "latest")
	if ist == nil || ist.Name != "shop:latest" || ist.Image.Name != "sha256:new" || ist.Image.DockerImageReference != "r/team/shop@sha256:new" {
		t.Errorf("ImageStreamTag %+v; want the newest item", ist)
	}
	if imageStreamTagFor(is, "v2") != nil {
		t.Error("a tag without items must not exist")
	}
}

func TestRepository(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{
		InternalRegistry + "/team/shop:latest":                InternalRegistry + "/team/shop",
		"quay.io/team/shop@sha256:" + strings.Repeat("a", 64): "quay.io/team/shop",
		"localhost:5000/shop":                                 "localhost:5000/shop",
	} {
		if got := repository(ref); got != want {
			t.Errorf("repository(%q) = %q; want %q", ref, got, want)
		}
	}
}
