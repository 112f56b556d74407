package osclient_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	buildv1 "github.com/openshift/api/build/v1"
	routev1 "github.com/openshift/api/route/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/osclient"
)

// recorder is an API server that records each request and answers with an object of the kind the path names.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (s *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" accept="+r.Header.Get("Accept")+
		" content-type="+r.Header.Get("Content-Type")+" ua="+r.Header.Get("User-Agent")+" body="+strings.TrimSpace(string(body)))
	s.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/log") {
		_, _ = io.WriteString(w, "2026-05-01T10:00:00Z hello\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/") // apis/G/V/namespaces/ns/RESOURCE[/NAME[/SUB]]
	kind := map[string]string{"builds": "Build", "buildconfigs": "BuildConfig", "imagestreamtags": "ImageStreamTag", "routes": "Route"}[parts[5]]
	switch {
	case len(parts) == 8 && parts[7] == "instantiate":
		kind = "Build"
	case len(parts) == 6:
		kind += "List"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": kind, "apiVersion": parts[1] + "/" + parts[2], "metadata": map[string]any{"name": "x"}})
}

type clients struct {
	build osclient.BuildV1Interface
	image osclient.ImageV1Interface
	route osclient.RouteV1Interface
}

// exercise makes each request the steps make.
func exercise(t *testing.T, c clients) {
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	bc, err := c.build.BuildConfigs("ns").Get(ctx, "app", metav1.GetOptions{})
	check("get buildconfig", err)
	if err == nil && bc.Name != "x" {
		t.Errorf("got buildconfig %q", bc.Name)
	}
	req := &buildv1.BuildRequest{ObjectMeta: metav1.ObjectMeta{Name: "app", Labels: map[string]string{"k": "v"}},
		TriggeredBy: []buildv1.BuildTriggerCause{{Message: "test"}}}
	b, err := c.build.BuildConfigs("ns").Instantiate(ctx, "app", req, metav1.CreateOptions{})
	check("instantiate", err)
	if err == nil && b.Name != "x" {
		t.Errorf("instantiate returned %q", b.Name)
	}
	_, err = c.build.Builds("ns").List(ctx, metav1.ListOptions{LabelSelector: "a=b", FieldSelector: "metadata.name=x"})
	check("list builds", err)
	b, err = c.build.Builds("ns").Get(ctx, "app-1", metav1.GetOptions{})
	check("get build", err)
	b.Status.Cancelled = true
	_, err = c.build.Builds("ns").Update(ctx, b, metav1.UpdateOptions{})
	check("update build", err)
	rc, err := c.build.RESTClient().Get().Namespace("ns").Resource("builds").Name("app-1").SubResource("log").
		Param("follow", "true").Param("timestamps", "true").Stream(ctx)
	check("build log", err)
	if err == nil {
		_, _ = io.Copy(io.Discard, rc)
		_ = rc.Close()
	}
	_, err = c.image.ImageStreamTags("ns").Get(ctx, "app:latest", metav1.GetOptions{})
	check("get imagestreamtag", err)
	rt, err := c.route.Routes("ns").Get(ctx, "shop", metav1.GetOptions{})
	check("get route", err)
	rt.Spec.AlternateBackends = []routev1.RouteTargetReference{{Kind: "Service", Name: "shop-canary"}}
	_, err = c.route.Routes("ns").Update(ctx, rt, metav1.UpdateOptions{})
	check("update route", err)
}

// osBuild, osImage and osRoute are openshift/client-go's clients behind the same interfaces.
type osBuild struct{ c buildclient.Interface }

func (b osBuild) RESTClient() rest.Interface { return b.c.BuildV1().RESTClient() }
func (b osBuild) BuildConfigs(ns string) osclient.BuildConfigInterface {
	return b.c.BuildV1().BuildConfigs(ns)
}
func (b osBuild) Builds(ns string) osclient.BuildInterface { return b.c.BuildV1().Builds(ns) }

type osImage struct{ c imageclient.Interface }

func (i osImage) ImageStreamTags(ns string) osclient.ImageStreamTagInterface {
	return i.c.ImageV1().ImageStreamTags(ns)
}

type osRoute struct{ c routeclient.Interface }

func (r osRoute) Routes(ns string) osclient.RouteInterface { return r.c.RouteV1().Routes(ns) }

// TestRequestsAsOpenShiftClientGo checks that the clients send the requests openshift/client-go's send.
func TestRequestsAsOpenShiftClientGo(t *testing.T) {
	t.Parallel()
	run := func(newClients func(*rest.Config) (clients, error)) []string {
		srv := &recorder{}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		c, err := newClients(&rest.Config{Host: hs.URL, UserAgent: "canaryline/test"})
		if err != nil {
			t.Fatal(err)
		}
		exercise(t, c)
		return srv.got
	}
	got := run(func(cfg *rest.Config) (c clients, err error) {
		if c.build, err = osclient.NewBuildV1ForConfig(cfg); err != nil {
			return c, err
		}
		if c.image, err = osclient.NewImageV1ForConfig(cfg); err != nil {
			return c, err
		}
		c.route, err = osclient.NewRouteV1ForConfig(cfg)
		return c, err
	})
	want := run(func(cfg *rest.Config) (clients, error) {
		return clients{osBuild{buildclient.NewForConfigOrDie(cfg)}, osImage{imageclient.NewForConfigOrDie(cfg)},
			osRoute{routeclient.NewForConfigOrDie(cfg)}}, nil
	})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nopenshift/client-go's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(got) != 9 || !strings.Contains(got[1], `"kind":"BuildRequest"`) {
		t.Errorf("requests:\n%s", strings.Join(got, "\n"))
	}
}
