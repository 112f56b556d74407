package tekton

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// installTriggers applies the checkout's triggers/ in the app's namespace, as its kustomization and README say
// (the RBAC, the TriggerTemplate, the GitHub and GitLab bindings and EventListeners, the webhook Secrets and the
// ClusterRoleBinding for the EventListeners' ServiceAccount). The TriggerTemplate is the checkout's with two
// changes for a fast test: the app's name as its default, and 1 s analysis windows.
func installTriggers(t *testing.T, a *app, secret string) {
	t.Helper()
	root := repoRoot(t)
	ctx := context.Background()
	for _, name := range []string{"canaryline-github-webhook", "canaryline-gitlab-webhook"} {
		if _, err := a.kube.CoreV1().Secrets(a.ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			StringData: map[string]string{"secret": secret}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	applyFile(t, a.ns, filepath.Join(root, "triggers", "rbac.yaml"), nil)
	applyFile(t, a.ns, filepath.Join(root, "triggers", "template.yaml"), func(o *unstructured.Unstructured) {
		params, _, _ := unstructured.NestedSlice(o.Object, "spec", "params")
		for _, p := range params {
			if m := p.(map[string]any); m["name"] == "app" {
				m["default"] = a.name
			}
		}
		_ = unstructured.SetNestedSlice(o.Object, params, "spec", "params")
		rts, _, _ := unstructured.NestedSlice(o.Object, "spec", "resourcetemplates")
		pr := rts[0].(map[string]any)
		prParams, _, _ := unstructured.NestedSlice(pr, "spec", "params")
		prParams = append(prParams, map[string]any{"name": "interval", "value": "1s"}, map[string]any{"name": "count", "value": "2"},
			map[string]any{"name": "ready-timeout", "value": "1m"})
		_ = unstructured.SetNestedSlice(pr, prParams, "spec", "params")
		_ = unstructured.SetNestedSlice(o.Object, rts, "spec", "resourcetemplates")
	})
	for _, f := range []string{"github/triggerbinding.yaml", "github/eventlistener.yaml", "gitlab/triggerbinding.yaml", "gitlab/eventlistener.yaml"} {
		applyFile(t, a.ns, filepath.Join(root, "triggers", f), nil)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "canaryline-triggers-" + a.ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "tekton-triggers-eventlistener-clusterroles"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: a.ns, Name: "canaryline-triggers"}}}
	if _, err := a.kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
}

// post sends a webhook to an EventListener's sink and returns the response's status and body.
func post(t *testing.T, url string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func githubPush(ref, sha string) []byte {
	b, _ := json.Marshal(map[string]any{"ref": ref, "after": sha,
		"repository":  map[string]any{"clone_url": "https://git.example.com/team/shop.git"},
		"head_commit": map[string]any{"id": sha, "message": "shop: faster checkout", "author": map[string]any{"name": "Ada", "email": "ada@example.com"}}})
	return b
}

func gitlabPush(ref, sha string) []byte {
	b, _ := json.Marshal(map[string]any{"object_kind": "push", "ref": ref, "after": sha, "checkout_sha": sha, "user_username": "ada",
		"project": map[string]any{"git_http_url": "https://git.example.com/team/shop.git"},
		"commits": []any{map[string]any{"id": sha, "message": "shop: faster checkout", "author": map[string]any{"name": "Ada", "email": "ada@example.com"}}}})
	return b
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestTriggersPushWebhooks: the project's EventListeners, their sinks and Triggers' core interceptors running. A
// correctly signed GitHub push and a GitLab push with the right token to main each create a canary-release
// PipelineRun that succeeds, with the pushed commit as git-revision; a wrongly signed push, a push with a wrong
// token and pushes to another branch create none.
func TestTriggersPushWebhooks(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	a := newApp(t)
	const secret = "s3cret-of-the-repository"
	installTriggers(t, a, secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	gh, err := cluster.Tekton().StartEventListener(ctx, a.ns, "canaryline-github")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := cluster.Tekton().StartEventListener(ctx, a.ns, "canaryline-gitlab")
	if err != nil {
		t.Fatal(err)
	}
	runsOf := func(el string) []string {
		prs, err := a.tk.Tekton.TektonV1().PipelineRuns(a.ns).List(ctx, metav1.ListOptions{LabelSelector: "triggers.tekton.dev/eventlistener=" + el})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, pr := range prs.Items {
			names = append(names, pr.Name)
		}
		return names
	}

	// Refused: wrong signature, wrong token, another branch. Each answer comes after the interceptors ran.
	other := githubPush("refs/heads/feature", strings.Repeat("1", 40))
	for _, c := range []struct {
		what, url string
		headers   map[string]string
		body      []byte
	}{
		{"GitHub push signed with another secret", gh, map[string]string{"X-GitHub-Event": "push",
			"X-Hub-Signature-256": sign("not-the-secret", githubPush("refs/heads/main", strings.Repeat("2", 40)))},
			githubPush("refs/heads/main", strings.Repeat("2", 40))},
		{"GitHub push to another branch", gh, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, other)}, other},
		{"GitLab push with another token", gl, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "not-the-secret"},
			gitlabPush("refs/heads/main", strings.Repeat("3", 40))},
		{"GitLab push to another branch", gl, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret},
			gitlabPush("refs/heads/feature", strings.Repeat("4", 40))},
	} {
		code, body := post(t, c.url, c.headers, c.body)
		t.Logf("%s: %d %s", c.what, code, strings.TrimSpace(body))
	}
	time.Sleep(3 * time.Second) // PipelineRuns are created before the sink answers; this allows for stragglers
	if got := append(runsOf("canaryline-github"), runsOf("canaryline-gitlab")...); len(got) != 0 {
		t.Fatalf("refused pushes created PipelineRuns %v", got)
	}

	// Accepted: a signed GitHub push and a GitLab push to main, one after the other (a release holds the
	// application's lock: a second one at the same time would be refused by shift-canary).
	ghSHA, glSHA := strings.Repeat("a1", 20), strings.Repeat("b2", 20)
	ghBody, glBody := githubPush("refs/heads/main", ghSHA), gitlabPush("refs/heads/main", glSHA)
	for _, c := range []struct {
		el, url, sha string
		headers      map[string]string
		body         []byte
	}{
		{"canaryline-github", gh, ghSHA, map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(secret, ghBody)}, ghBody},
		{"canaryline-gitlab", gl, glSHA, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, glBody},
	} {
		if code, body := post(t, c.url, c.headers, c.body); code != http.StatusAccepted {
			t.Fatalf("push to %s: %d %s; want 202", c.el, code, body)
		}
		var names []string
		waitUntil(t, 30*time.Second, "a PipelineRun from "+c.el, func() bool { names = runsOf(c.el); return len(names) > 0 })
		if len(names) != 1 {
			t.Fatalf("%s created %d PipelineRuns %v; want 1", c.el, len(names), names)
		}
		var out bytes.Buffer
		pr, err := tektonrun.Follow(ctx, a.tk, a.ns, names[0], tektonrun.Options{Out: &out})
		t.Logf("%s's PipelineRun %s:\n%s", c.el, names[0], out.String())
		if err != nil {
			t.Fatal(err)
		}
		if status(pr) != "Succeeded/Succeeded" {
			t.Errorf("%s's PipelineRun %s: %s; want Succeeded", c.el, pr.Name, status(pr))
		}
		if got := paramOf(pr.Spec.Params, "git-revision"); got != c.sha {
			t.Errorf("%s's PipelineRun git-revision %q; want the pushed commit %s", c.el, got, c.sha)
		}
		if got := paramOf(pr.Spec.Params, "git-author"); got != "Ada <ada@example.com>" {
			t.Errorf("%s's PipelineRun git-author %q; want the head commit's author", c.el, got)
		}
	}
}

func paramOf(params []pipelinev1.Param, name string) string {
	for _, p := range params {
		if p.Name == name {
			return p.Value.StringVal
		}
	}
	return fmt.Sprintf("<no param %s>", name)
}
