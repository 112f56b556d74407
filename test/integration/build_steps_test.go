package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	buildv1 "github.com/openshift/api/build/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

const commitA = "4f2a9c1d5e6b7a8f9c0d1e2f3a4b5c6d7e8f9a0b"

// buildStepsEnv sets up a namespace with BuildConfig "app" (annotated to script its builds) and a kubeconfig bound
// to the shipped Role.
func buildStepsEnv(t *testing.T, annotations map[string]string) (ns, kubeconfig string, bc buildclient.Interface) {
	t.Helper()
	devclustertest.Require(t, cluster)
	ns = devclustertest.Namespace(t, cluster)
	bc = buildclient.NewForConfigOrDie(cluster.Config())
	if _, err := bc.BuildV1().BuildConfigs(ns).Create(context.Background(), newBuildConfig("app", annotations), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns, stepsKubeconfig(t, ns, nil), bc
}

func TestStartAndWaitBuildHandOnTheDigest(t *testing.T) {
	t.Parallel()
	ns, kc, bc := buildStepsEnv(t, map[string]string{devcluster.SimLogLines: "10", devcluster.SimLineInterval: "10ms"})
	ctx := context.Background()

	start := runStep(t, "start-build", kc, map[string]string{
		"BUILD_CONFIG": "app", "COMMIT": commitA, "COMMIT_AUTHOR": "Dev One <dev@example.com>", "COMMIT_MESSAGE": "fix checkout",
		"BUILD_ENV": "RELEASE=42\n# comment\nFEATURE=on", "PIPELINE_RUN": "app-release-x7k2p",
	})
	if start.code != 0 {
		t.Fatalf("start-build exit %d", start.code)
	}
	if start.results["BUILD_NAME"] != "app-1" || start.results["BUILD_NUMBER"] != "1" || start.results["BUILD_CONFIG"] != "app" {
		t.Errorf("results %v; want app-1, 1, app", start.results)
	}
	if !strings.Contains(start.stderr, "started build app-1 of BuildConfig "+ns+"/app for commit "+commitA) {
		t.Errorf("the log does not say plainly what was started:\n%s", start.stderr)
	}
	b, err := bc.BuildV1().Builds(ns).Get(ctx, "app-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := b.Spec.Revision.Git; g.Commit != commitA || g.Author.Name != "Dev One" || g.Author.Email != "dev@example.com" || g.Message != "fix checkout" {
		t.Errorf("revision %+v", g)
	}
	if env := b.Spec.Strategy.SourceStrategy.Env; len(env) != 3 || env[1].Name != "RELEASE" || env[2].Value != "on" {
		t.Errorf("strategy env %v; want the BuildConfig's plus RELEASE and FEATURE", env)
	}
	if len(b.Spec.TriggeredBy) != 1 || b.Spec.TriggeredBy[0].Message != "PipelineRun app-release-x7k2p" {
		t.Errorf("triggeredBy %+v", b.Spec.TriggeredBy)
	}

	wait := runStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": "app-1"})
	if wait.code != 0 {
		t.Fatalf("wait-build exit %d", wait.code)
	}
	done, err := bc.BuildV1().Builds(ns).Get(ctx, "app-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	digest := done.Status.Output.To.ImageDigest
	wantURL := devcluster.InternalRegistry + "/" + ns + "/app@" + digest
	if wait.results["IMAGE_URL"] != wantURL || wait.results["IMAGE_DIGEST"] != digest || wait.results["IMAGE_STREAM_TAG"] != ns+"/app:latest" {
		t.Errorf("results %v; want IMAGE_URL %s", wait.results, wantURL)
	}
	got := lines(wait.stdout)
	if got[0] != `Cloning "https://git.example.com/team/app.git" ...` || got[len(got)-1] != "Push successful" ||
		!strings.Contains(wait.stdout, "build output line 10 of 10\n") {
		t.Errorf("build log on stdout:\n%s", wait.stdout)
	}
}

func TestStartBuildRetryReusesItsBuild(t *testing.T) {
	t.Parallel()
	ns, kc, bc := buildStepsEnv(t, map[string]string{devcluster.SimOutcome: "Hang"})
	env := map[string]string{"BUILD_CONFIG": "app", "COMMIT": commitA, "PIPELINE_RUN": "app-release-1"}
	first := runStep(t, "start-build", kc, env)
	second := runStep(t, "start-build", kc, env)
	if first.code != 0 || second.code != 0 || first.results["BUILD_NAME"] != "app-1" || second.results["BUILD_NAME"] != "app-1" {
		t.Fatalf("first %v, second %v; want both app-1", first.results, second.results)
	}
	if !strings.Contains(second.stderr, "reusing the build this run started before") {
		t.Errorf("second run's log does not say it reused the build:\n%s", second.stderr)
	}
	list, err := bc.BuildV1().Builds(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("%d builds (%v); want 1", len(list.Items), err)
	}
	// Another run, or another commit, is another build.
	other := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app", "COMMIT": commitA, "PIPELINE_RUN": "app-release-2"})
	if other.results["BUILD_NAME"] != "app-2" {
		t.Errorf("another PipelineRun got %v; want app-2", other.results)
	}
	// A retry after the run's build was cancelled starts a fresh one.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		b, err := bc.BuildV1().Builds(ns).Get(context.Background(), "app-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		b.Status.Cancelled = true
		_, err = bc.BuildV1().Builds(ns).Update(context.Background(), b, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "app-1 cancelled", func() bool {
		b, err := bc.BuildV1().Builds(ns).Get(context.Background(), "app-1", metav1.GetOptions{})
		return err == nil && b.Status.Phase == buildv1.BuildPhaseCancelled
	})
	if again := runStep(t, "start-build", kc, env); again.results["BUILD_NAME"] != "app-3" {
		t.Errorf("retry after the cancelled build got %v; want a new build app-3", again.results)
	}
}

func TestWaitBuildReportsFailure(t *testing.T) {
	t.Parallel()
	_, kc, _ := buildStepsEnv(t, map[string]string{
		devcluster.SimLog:            "STEP 1/3: FROM golang\nSTEP 2/3: RUN go build\nmain.go:3: undefined: Foo\nnot printed",
		devcluster.SimFailAfterLines: "3",
		devcluster.SimReason:         string(buildv1.StatusReasonDockerBuildFailed),
		devcluster.SimMessage:        "Docker build strategy has failed.",
	})
	start := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app", "COMMIT": commitA})
	wait := runStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": start.results["BUILD_NAME"]})
	if wait.code != 4 {
		t.Fatalf("wait-build exit %d; want 4 (the build failed)", wait.code)
	}
	for _, want := range []string{"ended Failed", "(DockerBuildFailed)", "Docker build strategy has failed.", "last lines of the build log", "  main.go:3: undefined: Foo"} {
		if !strings.Contains(wait.stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if _, ok := wait.results["IMAGE_URL"]; ok {
		t.Errorf("a failed build wrote IMAGE_URL %q", wait.results["IMAGE_URL"])
	}
}

// logCutProxy stands between a step and the shim and cuts the first `cuts` build-log streams after `after` lines.
type logCutProxy struct {
	srv   *httptest.Server
	after int
	cuts  int32
	done  atomic.Int32
}

func newLogCutProxy(t *testing.T, cuts int32, after int) *logCutProxy {
	t.Helper()
	target, _ := url.Parse(cluster.ShimURL)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.CAData)
	p := &logCutProxy{after: after, cuts: cuts}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if strings.HasSuffix(resp.Request.URL.Path, "/log") && p.done.Load() < p.cuts {
				p.done.Add(1)
				resp.Body = &cutAfterLines{ReadCloser: resp.Body, left: p.after}
			}
			return nil
		},
		ErrorLog: nil,
	}
	p.srv = httptest.NewTLSServer(rp) // client-go sends bearer tokens over TLS only
	t.Cleanup(p.srv.Close)
	return p
}

// cutAfterLines ends a stream abruptly after some lines, as a dropped connection does.
type cutAfterLines struct {
	io.ReadCloser
	left int
}

func (c *cutAfterLines) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n, err := c.ReadCloser.Read(b)
	for i := 0; i < n; i++ {
		if b[i] == '\n' {
			c.left--
			if c.left == 0 {
				return i + 1, err
			}
		}
	}
	return n, err
}

func TestWaitBuildResumesABrokenLogStream(t *testing.T) {
	t.Parallel()
	ns, kc, bc := buildStepsEnv(t, map[string]string{devcluster.SimLogLines: "40", devcluster.SimLineInterval: "15ms"})
	proxy := newLogCutProxy(t, 3, 7)
	cfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = proxy.srv.URL
		c.CertificateAuthorityData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.srv.Certificate().Raw})
	}
	viaProxy := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, viaProxy); err != nil {
		t.Fatal(err)
	}
	start := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app", "COMMIT": commitA})
	wait := runStep(t, "wait-build", viaProxy, map[string]string{"BUILD_NAME": start.results["BUILD_NAME"], "DEBUG": "true"})
	if wait.code != 0 {
		t.Fatalf("wait-build exit %d", wait.code)
	}
	if got := proxy.done.Load(); got != 3 {
		t.Fatalf("the proxy cut %d streams; want 3", got)
	}
	full, err := bc.BuildV1().RESTClient().Get().Namespace(ns).Resource("builds").Name(start.results["BUILD_NAME"]).SubResource("log").DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if wait.stdout != string(full) {
		t.Errorf("printed log differs from the build's log (repeated or lost lines)\n--- printed:\n%s--- build log:\n%s", wait.stdout, full)
	}
	if !strings.Contains(wait.stderr, "reconnecting") {
		t.Errorf("the step did not log its reconnects (DEBUG):\n%s", wait.stderr)
	}
}

func TestWaitBuildCancelsOnTimeout(t *testing.T) {
	t.Parallel()
	ns, kc, bc := buildStepsEnv(t, map[string]string{devcluster.SimOutcome: "Hang"})
	start := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app"})
	wait := runStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": start.results["BUILD_NAME"], "TIMEOUT": "1500ms"})
	if wait.code != 1 || !strings.Contains(wait.stderr, "TIMEOUT 1.5s ran out: it is now Cancelled") {
		t.Errorf("wait-build exit %d; want 1 saying the build was cancelled", wait.code)
	}
	b, err := bc.BuildV1().Builds(ns).Get(context.Background(), start.results["BUILD_NAME"], metav1.GetOptions{})
	if err != nil || b.Status.Phase != buildv1.BuildPhaseCancelled {
		t.Errorf("build phase %s (%v); want Cancelled", b.Status.Phase, err)
	}

	// Told not to cancel, it leaves the build running.
	start = runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app"})
	wait = runStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": start.results["BUILD_NAME"], "TIMEOUT": "1s", "CANCEL_ON_STOP": "false"})
	b, err = bc.BuildV1().Builds(ns).Get(context.Background(), start.results["BUILD_NAME"], metav1.GetOptions{})
	if wait.code != 1 || err != nil || b.Status.Phase != buildv1.BuildPhaseRunning {
		t.Errorf("CANCEL_ON_STOP=false: exit %d, build %s; want 1 and the build still Running", wait.code, b.Status.Phase)
	}
}

func TestWaitBuildCancelsOnSIGTERM(t *testing.T) {
	t.Parallel()
	ns, kc, bc := buildStepsEnv(t, map[string]string{devcluster.SimOutcome: "Hang"})
	start := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app"})
	name := start.results["BUILD_NAME"]
	cmd, wait := startStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": name})
	waitUntil(t, 10*time.Second, "build running", func() bool {
		b, err := bc.BuildV1().Builds(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err == nil && b.Status.Phase == buildv1.BuildPhaseRunning
	})
	time.Sleep(300 * time.Millisecond) // most often in its watch; a stop while it still reads the build cancels too
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := wait()
	if r.code != 1 || !strings.Contains(r.stderr, "the step was stopped: it is now Cancelled") {
		t.Errorf("exit %d; want 1, saying it cancelled the build", r.code)
	}
	b, err := bc.BuildV1().Builds(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || b.Status.Phase != buildv1.BuildPhaseCancelled || !b.Status.Cancelled {
		t.Errorf("build phase %s cancelled %v (%v); want Cancelled", b.Status.Phase, b.Status.Cancelled, err)
	}
}

func TestWaitBuildTakesTheDigestFromTheImageStreamTag(t *testing.T) {
	t.Parallel()
	ns, kc, _ := buildStepsEnv(t, map[string]string{devcluster.SimOmitDigest: "true",
		devcluster.SimDigest: "sha256:" + strings.Repeat("ab", 32)})
	start := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app"})
	wait := runStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": start.results["BUILD_NAME"]})
	want := devcluster.InternalRegistry + "/" + ns + "/app@sha256:" + strings.Repeat("ab", 32)
	if wait.code != 0 || wait.results["IMAGE_URL"] != want {
		t.Errorf("exit %d, IMAGE_URL %q; want %s from the ImageStreamTag", wait.code, wait.results["IMAGE_URL"], want)
	}
}

func TestStartBuildRefusesBadInputAndChangesNothing(t *testing.T) {
	t.Parallel()
	ns, kc, bc := buildStepsEnv(t, nil)
	noInstantiate := shippedRole(t)
	noInstantiate.Name = "no-instantiate"
	var rules []rbacv1.PolicyRule
	for _, r := range noInstantiate.Rules {
		if r.Resources[0] != "buildconfigs/instantiate" {
			rules = append(rules, r)
		}
	}
	noInstantiate.Rules = rules
	denied := stepsKubeconfigAs(t, ns, "denied", noInstantiate)

	for _, tc := range []struct {
		name, kubeconfig string
		env              map[string]string
		want             []string
	}{
		{"missing BuildConfig", kc, map[string]string{"BUILD_CONFIG": "shop"},
			[]string{"BuildConfig " + ns + "/shop does not exist", "oc new-app BUILDER_IMAGE~REPO_URL --name=shop --strategy=source", "No language matched the source repository"}},
		{"invalid name", kc, map[string]string{"BUILD_CONFIG": "Shop_App"}, []string{"param BUILD_CONFIG", "not a valid name"}},
		{"malformed commit", kc, map[string]string{"BUILD_CONFIG": "app", "COMMIT": "main"}, []string{"param COMMIT", `"main" is not a commit SHA`}},
		{"bad build env", kc, map[string]string{"BUILD_CONFIG": "app", "BUILD_ENV": "GOOD=1\nBAD LINE"}, []string{"param BUILD_ENV", "line 2"}},
		{"docker options on an S2I BuildConfig", kc, map[string]string{"BUILD_CONFIG": "app", "NO_CACHE": "true"}, []string{"param BUILD_ARGS", "Docker strategy"}},
		{"RBAC denied", denied, map[string]string{"BUILD_CONFIG": "app", "COMMIT": commitA},
			[]string{"permission denied", `"create"`, `"buildconfigs/instantiate"`, "system:serviceaccount:" + ns + ":denied"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runStep(t, "start-build", tc.kubeconfig, tc.env)
			if r.code != 2 {
				t.Errorf("exit %d; want 2", r.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
		})
	}
	list, err := bc.BuildV1().Builds(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("%d builds exist (%v); want none", len(list.Items), err)
	}
	if cur, _ := bc.BuildV1().BuildConfigs(ns).Get(context.Background(), "app", metav1.GetOptions{}); cur.Status.LastVersion != 0 {
		t.Errorf("BuildConfig lastVersion %d; want 0", cur.Status.LastVersion)
	}
}

// stepsKubeconfigAs is stepsKubeconfig for another ServiceAccount and Role in the same namespace.
func stepsKubeconfigAs(t *testing.T, ns, sa string, role *rbacv1.Role) string {
	t.Helper()
	r := role.DeepCopy()
	r.Name = sa
	return withServiceAccount(t, ns, sa, r)
}

func TestWaitBuildResolvesAnImageBuiltElsewhere(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	// A real OCI registry (go-containerregistry's), behind basic auth.
	regHandler := registry.New()
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		regHandler.ServeHTTP(w, r)
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host+"/team/app:v1.2", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"})); err != nil {
		t.Fatalf("push: %v", err)
	}
	digest, _ := img.Digest()

	dockerConfig := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(t.TempDir(), "none") // no cluster is needed on this path
	want := host + "/team/app@" + digest.String()
	for _, ref := range []string{host + "/team/app:v1.2", want} {
		r := runStep(t, "wait-build", none, map[string]string{"IMAGE": ref, "INSECURE_REGISTRY": "true", "DOCKER_CONFIG": dockerConfig})
		if r.code != 0 || r.results["IMAGE_URL"] != want || r.results["IMAGE_DIGEST"] != digest.String() {
			t.Errorf("IMAGE=%s: exit %d, results %v; want IMAGE_URL %s", ref, r.code, r.results, want)
		}
	}
	for _, tc := range []struct {
		name, image, dockerConfig, want string
	}{
		{"no credentials", host + "/team/app:v1.2", t.TempDir(), "refused access"},
		{"no such tag", host + "/team/app:v9", dockerConfig, "does not exist in its registry"},
		{"not a reference", "team app", dockerConfig, "not a valid image reference"},
	} {
		r := runStep(t, "wait-build", none, map[string]string{"IMAGE": tc.image, "INSECURE_REGISTRY": "true", "DOCKER_CONFIG": tc.dockerConfig})
		if r.code != 2 || !strings.Contains(r.stderr, "param IMAGE") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming IMAGE and %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
}

func TestWaitBuildFailsClearlyWithoutADigest(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	ns := devclustertest.Namespace(t, cluster)
	kc := stepsKubeconfig(t, ns, nil)
	bc := newBuildConfig("app", map[string]string{devcluster.SimOmitDigest: "true"})
	bc.Spec.Output.To = &corev1.ObjectReference{Kind: "DockerImage", Name: "quay.io/team/app:latest"} // no ImageStreamTag
	if _, err := buildclient.NewForConfigOrDie(cluster.Config()).BuildV1().BuildConfigs(ns).Create(context.Background(), bc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := runStep(t, "start-build", kc, map[string]string{"BUILD_CONFIG": "app"})
	wait := runStep(t, "wait-build", kc, map[string]string{"BUILD_NAME": start.results["BUILD_NAME"]})
	if wait.code != 1 || !strings.Contains(wait.stderr, "no image digest can be found") || wait.results["IMAGE_URL"] != "" {
		t.Errorf("exit %d results %v; want 1 and a clear error", wait.code, wait.results)
	}
}
