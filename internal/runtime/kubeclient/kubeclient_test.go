package kubeclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient/kubeclienttest"
)

// recorder is an API server that records each request (method, path, query and the headers that matter) and
// answers with an object of the kind the path names.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (s *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.got = append(s.got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" accept="+r.Header.Get("Accept")+
		" content-type="+r.Header.Get("Content-Type")+" ua="+r.Header.Get("User-Agent"))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	// /api/v1/namespaces/ns/pods or /apis/apps/v1/namespaces/ns/deployments/web
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	gv, tail := "v1", parts[4:]
	if parts[0] == "apis" {
		gv, tail = parts[1]+"/"+parts[2], parts[5:]
	}
	kind := map[string]string{"deployments": "Deployment", "replicasets": "ReplicaSet", "services": "Service", "pods": "Pod",
		"events": "Event", "leases": "Lease", "endpointslices": "EndpointSlice", "ingresses": "Ingress"}[tail[0]]
	if len(tail) == 1 && r.Method == http.MethodGet {
		kind += "List"
	}
	if r.Method == http.MethodDelete {
		gv, kind = "v1", "Status"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": kind, "apiVersion": gv, "metadata": map[string]any{"name": "x"}})
}

// exercise makes one request of each verb the steps use.
func exercise(t *testing.T, c kubeclient.Interface) {
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	d, err := c.AppsV1().Deployments("ns").Get(ctx, "web", metav1.GetOptions{})
	check("get deployment", err)
	if err == nil && d.Name != "x" {
		t.Errorf("got deployment %q", d.Name)
	}
	_, err = c.AppsV1().Deployments("ns").Update(ctx, d, metav1.UpdateOptions{})
	check("update deployment", err)
	_, err = c.AppsV1().ReplicaSets("ns").List(ctx, metav1.ListOptions{LabelSelector: "a=b"})
	check("list replicasets", err)
	_, err = c.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{LabelSelector: "a=b", ResourceVersion: "0"})
	check("list pods", err)
	check("delete service", c.CoreV1().Services("ns").Delete(ctx, "svc", metav1.DeleteOptions{}))
	_, err = c.CoordinationV1().Leases("ns").Get(ctx, "l", metav1.GetOptions{})
	check("get lease", err)
	_, err = c.DiscoveryV1().EndpointSlices("ns").List(ctx, metav1.ListOptions{})
	check("list endpointslices", err)
	_, err = c.NetworkingV1().Ingresses("ns").Get(ctx, "i", metav1.GetOptions{})
	check("get ingress", err)
}

// TestRequestsAsClientGo checks that the clients send the requests client-go's typed clients send.
func TestRequestsAsClientGo(t *testing.T) {
	t.Parallel()
	run := func(newClient func(*rest.Config) (kubeclient.Interface, error)) []string {
		srv := &recorder{}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		c, err := newClient(&rest.Config{Host: hs.URL, UserAgent: "canaryline/test"})
		if err != nil {
			t.Fatal(err)
		}
		exercise(t, c)
		return srv.got
	}
	got := run(kubeclient.NewForConfig)
	want := run(func(cfg *rest.Config) (kubeclient.Interface, error) {
		k, err := kubernetes.NewForConfig(cfg)
		return kubeclienttest.Wrap(k), err
	})
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nclient-go's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(got) != 8 || !strings.Contains(got[0], "accept=application/vnd.kubernetes.protobuf,application/json") {
		t.Errorf("requests:\n%s", strings.Join(got, "\n"))
	}
}
