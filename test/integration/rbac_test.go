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
)

// TestServiceAccountTokenLimitedByRole: a ServiceAccount token bound to a narrow Role gets what the Role grants and
// is denied the rest, for kube-apiserver resources and for the shim's OpenShift subresources alike.
func TestServiceAccountTokenLimitedByRole(t *testing.T) {
	t.Parallel()
	admin := kube(t)
	ns := cluster.Namespace(t)
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
