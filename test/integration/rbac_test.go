package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/tools/rbac"
)

// TestServiceAccountTokenLimitedByRole: a ServiceAccount token bound to a narrow Role gets what the Role grants and
// is denied the rest, for kube-apiserver resources and for the shim's OpenShift subresources alike.
func TestServiceAccountTokenLimitedByRole(t *testing.T) {
	t.Parallel()
	admin := kube(t)
	ns := devclustertest.Namespace(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "deployer"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "narrow"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"route.openshift.io"}, Resources: []string{"routes"}, Verbs: []string{"get"}},
		{APIGroups: []string{"build.openshift.io"}, Resources: []string{"buildconfigs", "builds"}, Verbs: []string{"get"}},
	}}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "narrow"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "narrow"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "deployer", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "deployer",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("mint a ServiceAccount token: %v", err)
	}
	sa := kubernetes.NewForConfigOrDie(cluster.TokenConfig(tr.Status.Token))
	saBuild := buildclient.NewForConfigOrDie(cluster.TokenConfig(tr.Status.Token))
	saRoute := routeclient.NewForConfigOrDie(cluster.TokenConfig(tr.Status.Token))
	adminBuild := buildclient.NewForConfigOrDie(cluster.Config())
	if _, err := adminBuild.BuildV1().BuildConfigs(ns).Create(ctx, newBuildConfig("shop", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := routeclient.NewForConfigOrDie(cluster.Config()).RouteV1().Routes(ns).Create(ctx, newRoute("shop", 100), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Granted.
	who, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || who.Status.UserInfo.Username != "system:serviceaccount:"+ns+":deployer" {
		t.Fatalf("whoami: %+v, %v", who, err)
	}
	if _, err := sa.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list deployments (granted): %v", err)
	}
	if _, err := saRoute.RouteV1().Routes(ns).Get(ctx, "shop", metav1.GetOptions{}); err != nil {
		t.Errorf("get route (granted): %v", err)
	}

	// Denied: everything the Role does not name.
	denied := map[string]error{}
	_, denied["list deployments in another namespace"] = sa.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{})
	_, denied["list secrets"] = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	_, denied["create a deployment"] = sa.AppsV1().Deployments(ns).Create(ctx, deployment("x", 1), metav1.CreateOptions{})
	_, denied["patch the route"] = saRoute.RouteV1().Routes(ns).Patch(ctx, "shop", types.MergePatchType, []byte(`{"spec":{"to":{"weight":50}}}`), metav1.PatchOptions{})
	_, denied["create a build directly"] = saBuild.BuildV1().Builds(ns).Create(ctx, &buildv1.Build{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{})
	_, denied["instantiate the BuildConfig"] = saBuild.BuildV1().BuildConfigs(ns).Instantiate(ctx, "shop", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	_, denied["read a build log"] = saBuild.BuildV1().RESTClient().Get().Namespace(ns).Resource("builds").Name("shop-1").SubResource("log").DoRaw(ctx)
	for what, err := range denied {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v; want Forbidden", what, err)
		}
	}
	// The shim's denial names the user, the verb and the subresource, as OpenShift's does.
	msg := denied["instantiate the BuildConfig"].Error()
	for _, want := range []string{"system:serviceaccount:" + ns + ":deployer", "cannot create", `"buildconfigs/instantiate"`, `"build.openshift.io"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("instantiate denial %q lacks %q", msg, want)
		}
	}

	// Granting the subresource is enough to instantiate: the build is created on the user's behalf, as in OpenShift.
	role.Rules = append(role.Rules,
		rbacv1.PolicyRule{APIGroups: []string{"build.openshift.io"}, Resources: []string{"buildconfigs/instantiate"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"build.openshift.io"}, Resources: []string{"builds/log"}, Verbs: []string{"get"}})
	if _, err := admin.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var b *buildv1.Build
	for { // RBAC changes reach the authorizer's cache within moments
		b, err = saBuild.BuildV1().BuildConfigs(ns).Instantiate(ctx, "shop", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || b.Name != "shop-1" {
		t.Fatalf("instantiate after granting buildconfigs/instantiate: %v, %v", b, err)
	}
	untilBuildDone(ctx, t, adminBuild, ns, b.Name)
	if _, err := saBuild.BuildV1().RESTClient().Get().Namespace(ns).Resource("builds").Name(b.Name).SubResource("log").DoRaw(ctx); err != nil {
		t.Errorf("read the build log after granting builds/log: %v", err)
	}

	// No credentials at all: 401 from the shim's own paths as from kube-apiserver.
	anon := cluster.TokenConfig("")
	_, err = buildclient.NewForConfigOrDie(anon).BuildV1().BuildConfigs(ns).Instantiate(ctx, "shop", &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{})
	if !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err) {
		t.Errorf("anonymous instantiate: %v; want Unauthorized", err)
	}
}

// TestStepsDeniedBeyondTheShippedRole: a token bound to the shipped Role cannot read Secrets or touch another
// namespace, and a step pointed at another namespace stops with exit 2 on the denial, having changed nothing.
func TestStepsDeniedBeyondTheShippedRole(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	other := newApp(t, "route", 1) // the same application in another namespace
	sa := kubernetes.NewForConfigOrDie(tokenConfigOf(t, a.kubeconfig))
	otherBefore, _ := other.kube.AppsV1().Deployments(other.ns).Get(ctx, "shop", metav1.GetOptions{})

	denied := map[string]error{}
	_, denied["get a Secret"] = sa.CoreV1().Secrets(a.ns).Get(ctx, "any", metav1.GetOptions{})
	_, denied["list Secrets"] = sa.CoreV1().Secrets(a.ns).List(ctx, metav1.ListOptions{})
	_, denied["list Deployments in another namespace"] = sa.AppsV1().Deployments(other.ns).List(ctx, metav1.ListOptions{})
	_, denied["get a Deployment in another namespace"] = sa.AppsV1().Deployments(other.ns).Get(ctx, "shop", metav1.GetOptions{})
	_, denied["create a Deployment in another namespace"] = sa.AppsV1().Deployments(other.ns).Create(ctx, deployment("x", 1), metav1.CreateOptions{})
	denied["delete a Service in another namespace"] = sa.CoreV1().Services(other.ns).Delete(ctx, "shop", metav1.DeleteOptions{})
	_, denied["patch a Route in another namespace"] = routeclient.NewForConfigOrDie(tokenConfigOf(t, a.kubeconfig)).RouteV1().Routes(other.ns).Patch(ctx, "shop",
		types.MergePatchType, []byte(`{"spec":{"to":{"weight":1}}}`), metav1.PatchOptions{})
	for what, err := range denied {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v; want Forbidden", what, err)
		} else {
			t.Logf("%s: denied: %v", what, err)
		}
	}

	r := a.shift(10, map[string]string{"NAMESPACE": other.ns})
	if r.code != 2 || !strings.Contains(r.stderr, "forbidden") && !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("shift-canary into another namespace: exit %d; want 2 on the denial", r.code)
	}
	after, _ := other.kube.AppsV1().Deployments(other.ns).Get(ctx, "shop", metav1.GetOptions{})
	if after.ResourceVersion != otherBefore.ResourceVersion || other.exists("deployment", "shop-canary") {
		t.Error("the step changed the other namespace")
	}
}

// TestPerApplicationRole: with the Role `canaryline generate role --app shop` prints, the steps release shop
// (shift, verify, promote) and are denied every change to cart, the application next to it.
func TestPerApplicationRole(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	ctx := context.Background()
	cart := a.addApp("cart")
	role, err := rbac.AppRole(rbac.Options{App: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	a.kubeconfig = withServiceAccount(t, a.ns, "shop-only", role)

	// shop's release passes, with a test Route (MATCH, TEST_HOST) that the Role lets it make and delete.
	for _, w := range []int{20, 50} {
		if r := a.shift(w, map[string]string{"BASELINE": "true", "MATCH": "header X-Canary: always", "TEST_HOST": "shop-test.apps.example.com"}); r.code != 0 {
			t.Fatalf("shift %d: exit %d\n%s", w, r.code, r.stderr)
		}
	}
	if a.testRoute() == nil {
		t.Error("no test Route after the shifts with MATCH")
	}
	if r := runStep(t, "verify-health", a.kubeconfig, map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1", "INTERVAL": "1s", "COUNT": "2"}); r.code != 0 {
		t.Fatalf("verify-health: exit %d", r.code)
	}
	if r := a.decide(map[string]string{"DECISION": "promote"}); r.code != 0 || r.results["DECISION"] != "promote" {
		t.Fatalf("promote: exit %d", r.code)
	}
	if a.testRoute() != nil {
		t.Error("the promotion left the test Route")
	}

	// cart is out of reach.
	cfg := tokenConfigOf(t, a.kubeconfig)
	sa := kubernetes.NewForConfigOrDie(cfg)
	routes := routeclient.NewForConfigOrDie(cfg)
	rt, _ := a.routes.RouteV1().Routes(a.ns).Get(ctx, "cart", metav1.GetOptions{})
	denied := map[string]error{}
	cart.Spec.Template.Spec.Containers[0].Image = canaryImage
	_, denied["update cart's Deployment"] = sa.AppsV1().Deployments(a.ns).Update(ctx, cart, metav1.UpdateOptions{})
	denied["delete cart's Deployment"] = sa.AppsV1().Deployments(a.ns).Delete(ctx, "cart", metav1.DeleteOptions{})
	denied["delete cart's Service"] = sa.CoreV1().Services(a.ns).Delete(ctx, "cart", metav1.DeleteOptions{})
	_, denied["get cart's Service"] = sa.CoreV1().Services(a.ns).Get(ctx, "cart", metav1.GetOptions{})
	_, denied["update cart's Route"] = routes.RouteV1().Routes(a.ns).Update(ctx, rt, metav1.UpdateOptions{})
	_, denied["get cart's release Lease"] = sa.CoordinationV1().Leases(a.ns).Get(ctx, "canaryline-cart", metav1.GetOptions{})
	_, denied["get a Secret"] = sa.CoreV1().Secrets(a.ns).Get(ctx, "any", metav1.GetOptions{})
	for what, err := range denied {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v; want Forbidden", what, err)
		}
	}
	before, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "cart", metav1.GetOptions{})
	r := runStep(t, "shift-canary", a.kubeconfig, map[string]string{"APP": "cart", "ROUTER": "route", "IMAGE": canaryImage,
		"WEIGHT": "10", "RELEASE_ID": "cart-release-1", "READY_TIMEOUT": "30s"})
	if r.code != 2 || !strings.Contains(r.stderr, "forbidden") && !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("shift-canary APP=cart with shop's Role: exit %d; want 2 on the denial", r.code)
	}
	after, _ := a.kube.AppsV1().Deployments(a.ns).Get(ctx, "cart", metav1.GetOptions{})
	if after.ResourceVersion != before.ResourceVersion || a.exists("deployment", "cart-canary") {
		t.Error("shop's Role changed cart")
	}
}

// tokenConfigOf is a client config with the token of a steps kubeconfig.
func tokenConfigOf(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
