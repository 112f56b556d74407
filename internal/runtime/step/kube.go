package step

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig is the in-cluster config in a pod (the step's ServiceAccount), else KUBECONFIG (or ~/.kube/config)
// with its current context. The namespace is the pod's own, else the kubeconfig context's.
func RESTConfig(env func(string) (string, bool)) (*rest.Config, string, error) {
	if _, inPod := env("KUBERNETES_SERVICE_HOST"); inPod {
		if cfg, err := rest.InClusterConfig(); err == nil {
			ns, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
			return Tune(cfg), string(ns), nil
		}
	}
	kc, _ := env("KUBECONFIG")
	cfg, ns, err := LoadKubeconfig(kc)
	if err != nil {
		return nil, "", &InvalidError{Msg: fmt.Sprintf("no cluster to talk to: %v", err),
			Fix: "run in a pod with a ServiceAccount, or set KUBECONFIG"}
	}
	return Tune(cfg), ns, nil
}

// LoadKubeconfig loads the REST config and the namespace of the current context with clientcmd's default loading
// rules: the kubeconfig at path when not empty, else $KUBECONFIG, else ~/.kube/config. The tools (canaryline
// status) load their config this way too.
func LoadKubeconfig(path string) (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, _ := cc.Namespace()
	return cfg, ns, nil
}

// Tune sets what every step's (and tool's) requests carry: the user agent naming the step, client-side rate limits
// above client-go's defaults, and RetryTransport. Call it once per config.
func Tune(cfg *rest.Config) *rest.Config {
	cfg.UserAgent = userAgent(os.Args)
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Wrap(RetryTransport)
	return cfg
}

// userAgent names the step in every API request ("canaryline/shift-canary"), so that the apiserver's audit log
// tells which step did what.
func userAgent(args []string) string {
	name := ""
	if len(args) > 0 {
		name = filepath.Base(args[0])
	}
	if name == "canaryline-steps" && len(args) > 1 {
		name = args[1]
	}
	if name == "" || strings.ContainsAny(name, " /") || strings.HasSuffix(name, ".test") {
		return "canaryline"
	}
	return "canaryline/" + name
}
