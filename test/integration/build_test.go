package integration

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

// newBuildConfig is what `oc new-app BUILDER~REPO --strategy=source` creates: S2I from a builder image, output to
// an ImageStreamTag.
func newBuildConfig(name string, annotations map[string]string) *buildv1.BuildConfig {
	return &buildv1.BuildConfig{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}, Annotations: annotations},
		Spec: buildv1.BuildConfigSpec{
			RunPolicy: buildv1.BuildRunPolicySerial,
			CommonSpec: buildv1.CommonSpec{
				Source: buildv1.BuildSource{Type: buildv1.BuildSourceGit, Git: &buildv1.GitBuildSource{URI: "https://git.example.com/team/" + name + ".git", Ref: "main"}},
				Strategy: buildv1.BuildStrategy{Type: buildv1.SourceBuildStrategyType, SourceStrategy: &buildv1.SourceBuildStrategy{
					From: corev1.ObjectReference{Kind: "ImageStreamTag", Namespace: "openshift", Name: "golang:1.26"},
					Env:  []corev1.EnvVar{{Name: "GOFLAGS", Value: "-mod=vendor"}},
				}},
				Output: buildv1.BuildOutput{To: &corev1.ObjectReference{Kind: "ImageStreamTag", Name: name + ":latest"}},
			},
		},
	}
}

func buildClients(t *testing.T) (buildclient.Interface, imageclient.Interface) {
	t.Helper()
	devclustertest.Require(t, cluster)
	return buildclient.NewForConfigOrDie(cluster.Config()), imageclient.NewForConfigOrDie(cluster.Config())
}

// untilBuildDone waits with list+watch for a terminal phase, as `oc start-build --wait` does.
func untilBuildDone(ctx context.Context, t *testing.T, c buildclient.Interface, ns, name string) *buildv1.Build {
	t.Helper()
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return c.BuildV1().Builds(ns).List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.BuildV1().Builds(ns).Watch(ctx, o)
		},
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &buildv1.Build{}, nil, func(e watch.Event) (bool, error) {
		b, ok := e.Object.(*buildv1.Build)
		if !ok {
			return false, nil
		}
		switch b.Status.Phase {
		case buildv1.BuildPhaseComplete, buildv1.BuildPhaseFailed, buildv1.BuildPhaseError, buildv1.BuildPhaseCancelled:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("wait for Build %s/%s: %v", ns, name, err)
	}
	return ev.Object.(*buildv1.Build)
}

// streamLog follows builds/{name}/log with the REST client, as `oc logs -f build/NAME` does, sending each line.
func streamLog(ctx context.Context, c buildclient.Interface, ns, name string, lines chan<- string) error {
	defer close(lines)
	rc, err := c.BuildV1().RESTClient().Get().Namespace(ns).Resource("builds").Name(name).SubResource("log").
		VersionedParams(&buildv1.BuildLogOptions{Follow: true}, parameterCodec).Stream(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		lines <- sc.Text()
	}
	return sc.Err()
}

func TestBuildConfigInstantiateCompletesWithDigestAndStreamsLog(t *testing.T) {
	t.Parallel()
	bc, ic := buildClients(t)
	ns := devclustertest.Namespace(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfg := newBuildConfig("shop", map[string]string{devcluster.SimLogLines: "20", devcluster.SimLineInterval: "25ms"})
	if _, err := bc.BuildV1().BuildConfigs(ns).Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	commit := "4f2a9c1d5e6b7a8f9c0d1e2f3a4b5c6d7e8f9a0b"
	req := &buildv1.BuildRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Revision: &buildv1.SourceRevision{Type: buildv1.BuildSourceGit, Git: &buildv1.GitSourceRevision{
			Commit: commit, Message: "fix checkout", Author: buildv1.SourceControlUser{Name: "Dev One", Email: "dev@example.com"}}},
		Env:         []corev1.EnvVar{{Name: "RELEASE", Value: "42"}},
		TriggeredBy: []buildv1.BuildTriggerCause{{Message: "PipelineRun shop-release-x7k2p"}},
	}
	b, err := bc.BuildV1().BuildConfigs(ns).Instantiate(ctx, "shop", req, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	if b.Name != "shop-1" || b.Labels[buildv1.BuildConfigLabel] != "shop" || b.Annotations[buildv1.BuildNumberAnnotation] != "1" {
		t.Errorf("build %s labels %v annotations %v; want shop-1 with the buildconfig label and build.number 1", b.Name, b.Labels, b.Annotations)
	}
	if b.Spec.Revision == nil || b.Spec.Revision.Git.Commit != commit || len(b.Spec.TriggeredBy) != 1 ||
		b.Spec.TriggeredBy[0].Message != "PipelineRun shop-release-x7k2p" {
		t.Errorf("build spec revision %+v triggeredBy %+v; want the request's", b.Spec.Revision, b.Spec.TriggeredBy)
	}
	if env := b.Spec.Strategy.SourceStrategy.Env; len(env) != 2 || env[1].Name != "RELEASE" {
		t.Errorf("strategy env %v; want the BuildConfig's plus RELEASE", env)
	}

	// Follow the log while the build runs.
	lines := make(chan string, 100)
	logErr := make(chan error, 1)
	go func() { logErr <- streamLog(ctx, bc, ns, b.Name, lines) }()
	var got []string
	sawRunning := false
	for l := range lines {
		got = append(got, l)
		if len(got) == 3 { // the stream delivers lines before the build has ended
			cur, err := bc.BuildV1().Builds(ns).Get(ctx, b.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sawRunning = cur.Status.Phase == buildv1.BuildPhaseRunning
		}
	}
	if err := <-logErr; err != nil {
		t.Fatalf("stream log: %v", err)
	}
	if !sawRunning {
		t.Error("the third log line arrived after the build left Running; want a live stream")
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"Commit:\t" + commit, "build output line 1 of 20", "build output line 20 of 20", "Push successful"} {
		if !strings.Contains(joined, want) {
			t.Errorf("log lacks %q:\n%s", want, joined)
		}
	}

	done := untilBuildDone(ctx, t, bc, ns, b.Name)
	if done.Status.Phase != buildv1.BuildPhaseComplete {
		t.Fatalf("phase %s (%s: %s); want Complete", done.Status.Phase, done.Status.Reason, done.Status.Message)
	}
	if done.Status.Output.To == nil || !strings.HasPrefix(done.Status.Output.To.ImageDigest, "sha256:") || len(done.Status.Output.To.ImageDigest) != 71 {
		t.Fatalf("status.output.to %+v; want a sha256 digest", done.Status.Output.To)
	}
	digest := done.Status.Output.To.ImageDigest
	wantRef := devcluster.InternalRegistry + "/" + ns + "/shop:latest"
	if done.Status.OutputDockerImageReference != wantRef || done.Status.CompletionTimestamp == nil || done.Status.StartTimestamp == nil {
		t.Errorf("outputDockerImageReference %q, timestamps %v %v; want %q and both set",
			done.Status.OutputDockerImageReference, done.Status.StartTimestamp, done.Status.CompletionTimestamp, wantRef)
	}
	ist, err := ic.ImageV1().ImageStreamTags(ns).Get(ctx, "shop:latest", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get ImageStreamTag shop:latest: %v", err)
	}
	if ist.Image.Name != digest || ist.Image.DockerImageReference != devcluster.InternalRegistry+"/"+ns+"/shop@"+digest {
		t.Errorf("ImageStreamTag image %q ref %q; want digest %s", ist.Image.Name, ist.Image.DockerImageReference, digest)
	}
	if _, err := ic.ImageV1().ImageStreamTags(ns).Get(ctx, "shop:nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get ImageStreamTag shop:nope: %v; want NotFound", err)
	}

	cur, err := bc.BuildV1().BuildConfigs(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil || cur.Status.LastVersion != 1 {
		t.Fatalf("BuildConfig lastVersion %d (%v); want 1", cur.Status.LastVersion, err)
	}
	b2, err := bc.BuildV1().BuildConfigs(ns).Instantiate(ctx, "shop", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	if err != nil || b2.Name != "shop-2" {
		t.Fatalf("second instantiate: %v, %v; want shop-2", b2, err)
	}
	// A finished build's log is served whole, without follow.
	raw, err := bc.BuildV1().RESTClient().Get().Namespace(ns).Resource("builds").Name(b.Name).SubResource("log").
		VersionedParams(&buildv1.BuildLogOptions{TailLines: ptr(int64(2))}, parameterCodec).DoRaw(ctx)
	if err != nil || strings.Count(string(raw), "\n") != 2 || !strings.Contains(string(raw), "Push successful") {
		t.Errorf("log with tailLines=2: %q, %v; want the last two lines", raw, err)
	}
}

func TestScriptedBuildFailureSurfacesReason(t *testing.T) {
	t.Parallel()
	bc, _ := buildClients(t)
	ns := devclustertest.Namespace(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cfg := newBuildConfig("api", map[string]string{
		devcluster.SimLog:            "step one\nstep two\nstep three\nnpm ERR! missing script: build\nnever printed",
		devcluster.SimFailAfterLines: "4",
		devcluster.SimReason:         string(buildv1.StatusReasonDockerBuildFailed),
		devcluster.SimMessage:        "Docker build strategy has failed.",
	})
	if _, err := bc.BuildV1().BuildConfigs(ns).Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := bc.BuildV1().BuildConfigs(ns).Instantiate(ctx, "api", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "api"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := untilBuildDone(ctx, t, bc, ns, b.Name)
	if done.Status.Phase != buildv1.BuildPhaseFailed || done.Status.Reason != buildv1.StatusReasonDockerBuildFailed ||
		done.Status.Message != "Docker build strategy has failed." {
		t.Fatalf("phase %s reason %s message %q; want Failed, DockerBuildFailed and the scripted message",
			done.Status.Phase, done.Status.Reason, done.Status.Message)
	}
	if !strings.Contains(done.Status.LogSnippet, "npm ERR! missing script: build") || strings.Contains(done.Status.LogSnippet, "never printed") {
		t.Errorf("logSnippet %q: want the last lines before the failure and nothing after", done.Status.LogSnippet)
	}
	if done.Status.Output.To != nil {
		t.Errorf("a failed build has output %+v; want none", done.Status.Output.To)
	}

	// Error is scripted the same way.
	cfgErr := newBuildConfig("worker", map[string]string{devcluster.SimOutcome: "Error"})
	if _, err := bc.BuildV1().BuildConfigs(ns).Create(ctx, cfgErr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err = bc.BuildV1().BuildConfigs(ns).Instantiate(ctx, "worker", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "worker"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if done := untilBuildDone(ctx, t, bc, ns, b.Name); done.Status.Phase != buildv1.BuildPhaseError || done.Status.Reason == "" {
		t.Errorf("phase %s reason %q; want Error with a reason", done.Status.Phase, done.Status.Reason)
	}
}

func TestHangingBuildIsCancelled(t *testing.T) {
	t.Parallel()
	bc, _ := buildClients(t)
	ns := devclustertest.Namespace(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := bc.BuildV1().BuildConfigs(ns).Create(ctx, newBuildConfig("slow", map[string]string{devcluster.SimOutcome: "Hang"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := bc.BuildV1().BuildConfigs(ns).Instantiate(ctx, "slow", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "slow"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until it runs, then cancel it as `oc cancel-build` does: set status.cancelled and update.
	for {
		cur, err := bc.BuildV1().Builds(ns).Get(ctx, b.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status.Phase == buildv1.BuildPhaseRunning {
			cur.Status.Cancelled = true
			if _, err := bc.BuildV1().Builds(ns).Update(ctx, cur, metav1.UpdateOptions{}); apierrors.IsConflict(err) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			break
		}
		if cur.Status.Phase != buildv1.BuildPhaseNew && cur.Status.Phase != buildv1.BuildPhasePending {
			t.Fatalf("phase %s before cancel; want it Running", cur.Status.Phase)
		}
		time.Sleep(20 * time.Millisecond)
	}
	done := untilBuildDone(ctx, t, bc, ns, b.Name)
	if done.Status.Phase != buildv1.BuildPhaseCancelled || done.Status.Reason != buildv1.StatusReasonCancelledBuild {
		t.Errorf("phase %s reason %s; want Cancelled, CancelledBuild", done.Status.Phase, done.Status.Reason)
	}
}

func TestBuildAPIErrors(t *testing.T) {
	t.Parallel()
	bc, _ := buildClients(t)
	ns := devclustertest.Namespace(t, cluster)
	ctx := context.Background()

	_, err := bc.BuildV1().BuildConfigs(ns).Instantiate(ctx, "missing", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "missing"}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("instantiate a missing BuildConfig: %v; want NotFound", err)
	}
	_, err = bc.BuildV1().RESTClient().Get().Namespace(ns).Resource("builds").Name("missing-1").SubResource("log").DoRaw(ctx)
	if !apierrors.IsNotFound(err) {
		t.Errorf("log of a missing build: %v; want NotFound", err)
	}
	// The schema generated from openshift/api rejects wrong types and prunes unknown fields.
	bad := newBuildConfig("typed", nil)
	raw := bc.BuildV1().RESTClient().Post().Namespace(ns).Resource("buildconfigs").
		Body([]byte(`{"apiVersion":"build.openshift.io/v1","kind":"BuildConfig","metadata":{"name":"typed"},
			"spec":{"successfulBuildsHistoryLimit":"many","strategy":{"type":"Source"}}}`)).Do(ctx)
	if err := raw.Error(); !apierrors.IsInvalid(err) {
		t.Errorf("BuildConfig with a string successfulBuildsHistoryLimit: %v; want Invalid", err)
	}
	res := bc.BuildV1().RESTClient().Post().Namespace(ns).Resource("buildconfigs").
		Body([]byte(fmt.Sprintf(`{"apiVersion":"build.openshift.io/v1","kind":"BuildConfig","metadata":{"name":%q},
			"spec":{"strategy":{"type":"Source","sourceStrategy":{"from":{"kind":"DockerImage","name":"x"},"bogus":1}}}}`, bad.Name))).Do(ctx)
	obj, err := res.Get()
	if err != nil {
		t.Fatal(err)
	}
	stored := obj.(*buildv1.BuildConfig)
	if stored.Spec.Strategy.SourceStrategy == nil || stored.Spec.Strategy.SourceStrategy.From.Name != "x" {
		t.Errorf("stored source strategy %+v; want from.name x kept", stored.Spec.Strategy.SourceStrategy)
	}
	u, err := bc.BuildV1().RESTClient().Get().Namespace(ns).Resource("buildconfigs").Name(bad.Name).DoRaw(ctx)
	if err != nil || strings.Contains(string(u), "bogus") {
		t.Errorf("stored BuildConfig %s (%v): want the unknown field pruned", u, err)
	}
}

var parameterCodec = runtime.NewParameterCodec(buildScheme())

func buildScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = buildv1.AddToScheme(s)
	return s
}

func ptr[T any](v T) *T { return &v }
