// Command emptyclient is the yardstick of the steps' cold start: it links the client libraries the steps link
// (Kubernetes, OpenShift, registry and Prometheus clients), loads KUBECONFIG, makes one API request and exits.
// Whatever a step takes longer than this to reach the API server is the step's own doing.
package main

import (
	"context"
	"fmt"
	"os"

	// Linked for their init work, as in the steps (go list -deps ./cmd/canaryline-steps).
	_ "github.com/google/go-containerregistry/pkg/authn"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/prometheus/client_golang/api/prometheus/v1"
	_ "k8s.io/client-go/dynamic"
	_ "k8s.io/client-go/rest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	_ "github.com/canaryline/canaryline/internal/runtime/osclient" // the OpenShift clients
)

// UserAgent tells the benchmark's API server this program's requests from the steps'.
const UserAgent = "canaryline-bench/emptyclient"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "emptyclient:", err)
		os.Exit(1)
	}
}

// run lists the pods of the kubeconfig context's namespace: one GET.
func run() error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = os.Getenv("KUBECONFIG")
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = UserAgent
	ns, _, err := cc.Namespace()
	if err != nil {
		return fmt.Errorf("read the namespace: %w", err)
	}
	kube, err := kubeclient.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build the client: %w", err)
	}
	if _, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{}); err != nil {
		return fmt.Errorf("list pods in %s: %w", ns, err)
	}
	return nil
}
