package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	routeclient "github.com/openshift/client-go/route/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
)

// badCase is one invalid input: the step must exit 2, name param, say how to fix it (fix is a part of the fix),
// and change nothing.
type badCase struct {
	name, step string
	env        map[string]string
	param, fix string
}

// badGroup is cases that share a namespace set up by setup; each case runs as its own ServiceAccount (bound to
// the shipped Role), so that the audit log tells its requests apart.
type badGroup struct {
	name string
	// setup returns the namespace and each step's base environment, by "step/".
	setup func(t *testing.T) (ns string, base map[string]map[string]string)
	cases []badCase
}

// mutatingVerbs are the audit verbs that change something.
var mutatingVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

const sentinelLease = "canaryline-audit-sentinel"

func TestBadInputExitsTwoNamesTheParamAndChangesNothing(t *testing.T) {
	t.Parallel()
	devclustertest.Require(t, cluster)
	t0 := time.Now()
	digest2 := "registry.example.com/team/shop@sha256:" + strings.Repeat("3", 64)
	q := func(query string) string { return "- name: q\n  query: '" + query + "'\n  threshold: '< 1'\n" }
	cmp := func(query string) string { return "- name: c\n  query: '" + query + "'\n" }
	missingFile := filepath.Join(t.TempDir(), "missing")
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	groups := []badGroup{
		{name: "start-build", setup: badBuildNamespace, cases: []badCase{
			{"invalid BuildConfig name", "start-build", map[string]string{"BUILD_CONFIG": "Shop_App"}, "BUILD_CONFIG", "oc get bc"},
			{"no BuildConfig and no APP", "start-build", map[string]string{"BUILD_CONFIG": "", "APP": ""}, "BUILD_CONFIG", "give the name of the application's BuildConfig"},
			{"invalid APP as the BuildConfig", "start-build", map[string]string{"BUILD_CONFIG": "", "APP": "Shop"}, "APP", "oc get bc"},
			{"BuildConfig does not exist", "start-build", map[string]string{"BUILD_CONFIG": "shop"}, "BUILD_CONFIG", "oc new-app BUILDER_IMAGE~REPO_URL --name=shop"},
			{"branch as COMMIT", "start-build", map[string]string{"COMMIT": "main"}, "COMMIT", "full commit SHA"},
			{"COMMIT_AUTHOR without COMMIT", "start-build", map[string]string{"COMMIT_AUTHOR": "Dev <dev@example.com>"}, "COMMIT", "set COMMIT too"},
			{"BUILD_ENV line without =", "start-build", map[string]string{"BUILD_ENV": "GOOD=1\nBAD LINE"}, "BUILD_ENV", "one NAME=value a line"},
			{"BUILD_ARGS invalid name", "start-build", map[string]string{"BUILD_ARGS": "1BAD=x"}, "BUILD_ARGS", "one NAME=value a line"},
			{"INCREMENTAL not a boolean", "start-build", map[string]string{"INCREMENTAL": "maybe"}, "INCREMENTAL", `say "true" or "false"`},
			{"NO_CACHE not a boolean", "start-build", map[string]string{"NO_CACHE": "yes"}, "NO_CACHE", `say "true" or "false"`},
			{"NO_CACHE on an S2I BuildConfig", "start-build", map[string]string{"NO_CACHE": "true"}, "BUILD_ARGS", "Docker strategy"},
			{"INCREMENTAL on a Docker BuildConfig", "start-build", map[string]string{"BUILD_CONFIG": "dock", "INCREMENTAL": "true"}, "INCREMENTAL", "Source (S2I) strategy"},
			{"invalid PIPELINE_RUN", "start-build", map[string]string{"PIPELINE_RUN": "Run_1"}, "PIPELINE_RUN", "$(context.pipelineRun.name)"},
			{"invalid NAMESPACE", "start-build", map[string]string{"NAMESPACE": "Team"}, "NAMESPACE", "leave it empty"},
		}},
		{name: "wait-build", setup: badBuildNamespace, cases: []badCase{
			{"neither BUILD_NAME nor IMAGE", "wait-build", map[string]string{}, "BUILD_NAME", "start-build's BUILD_NAME result"},
			{"BUILD_NAME and IMAGE both", "wait-build", map[string]string{"BUILD_NAME": "app-1", "IMAGE": "quay.io/team/app:v1"}, "IMAGE", "not both"},
			{"invalid BUILD_NAME", "wait-build", map[string]string{"BUILD_NAME": "App_1"}, "BUILD_NAME", "start-build's BUILD_NAME result"},
			{"build does not exist", "wait-build", map[string]string{"BUILD_NAME": "app-9"}, "BUILD_NAME", "start-build's BUILD_NAME result"},
			{"zero TIMEOUT", "wait-build", map[string]string{"BUILD_NAME": "app-1", "TIMEOUT": "0s"}, "TIMEOUT", "positive Go duration"},
			{"negative TIMEOUT", "wait-build", map[string]string{"BUILD_NAME": "app-1", "TIMEOUT": "-5m"}, "TIMEOUT", "positive Go duration"},
			{"TIMEOUT without a unit", "wait-build", map[string]string{"BUILD_NAME": "app-1", "TIMEOUT": "30"}, "TIMEOUT", "Go duration such as 90s"},
			{"IMAGE not a reference", "wait-build", map[string]string{"IMAGE": "team app"}, "IMAGE", "full reference"},
			{"CANCEL_ON_STOP not a boolean", "wait-build", map[string]string{"BUILD_NAME": "app-1", "CANCEL_ON_STOP": "sometimes"}, "CANCEL_ON_STOP", `say "true" or "false"`},
		}},
		{name: "shift-canary", setup: badAppNamespace(false), cases: []badCase{
			{"invalid APP", "shift-canary", map[string]string{"APP": "Shop"}, "APP", "oc get deploy"},
			{"APP Deployment does not exist", "shift-canary", map[string]string{"APP": "nope", "STABLE_SERVICE": "shop", "ROUTER_NAME": "shop"}, "APP", "oc get deploy"},
			{"IMAGE without a digest", "shift-canary", map[string]string{"IMAGE": "registry.example.com/team/shop:v2"}, "IMAGE", "pinned by digest"},
			{"IMAGE empty", "shift-canary", map[string]string{"IMAGE": ""}, "IMAGE", "wait-build's IMAGE_URL"},
			{"WEIGHT over 100", "shift-canary", map[string]string{"WEIGHT": "101"}, "WEIGHT", "from 0 to 100"},
			{"WEIGHT negative", "shift-canary", map[string]string{"WEIGHT": "-5"}, "WEIGHT", "from 0 to 100"},
			{"WEIGHT not a number", "shift-canary", map[string]string{"WEIGHT": "ten"}, "WEIGHT", "from 0 to 100"},
			{"unknown ROUTER", "shift-canary", map[string]string{"ROUTER": "traefik"}, "ROUTER", "use one of route, httproute"},
			{"router object does not exist (httproute)", "shift-canary", map[string]string{"ROUTER": "httproute"}, "ROUTER_NAME", "create it"},
			{"Route named by ROUTER_NAME does not exist", "shift-canary", map[string]string{"ROUTER_NAME": "shop-public"}, "ROUTER_NAME", "oc expose service shop"},
			{"invalid ROUTER_NAME", "shift-canary", map[string]string{"ROUTER_NAME": "Shop Route"}, "ROUTER_NAME", "router object's name"},
			{"BASELINE with nginx", "shift-canary", map[string]string{"ROUTER": "nginx", "BASELINE": "true"}, "BASELINE", "one canary per host"},
			{"BASELINE doubles WEIGHT over 100", "shift-canary", map[string]string{"BASELINE": "true", "WEIGHT": "60"}, "WEIGHT", "at most 50"},
			{"replicas router cannot reach 100", "shift-canary", map[string]string{"ROUTER": "replicas", "WEIGHT": "100"}, "WEIGHT", "promote-or-rollback"},
			{"zero READY_TIMEOUT", "shift-canary", map[string]string{"READY_TIMEOUT": "0s"}, "READY_TIMEOUT", "positive Go duration"},
			{"LOCK_TTL too short", "shift-canary", map[string]string{"LOCK_TTL": "5s"}, "LOCK_TTL", "between 10s and 24h"},
			{"negative LOCK_TTL", "shift-canary", map[string]string{"LOCK_TTL": "-1m"}, "LOCK_TTL", "between 10s and 24h"},
			{"invalid RELEASE_ID", "shift-canary", map[string]string{"RELEASE_ID": "Release_1"}, "RELEASE_ID", "$(context.pipelineRun.name)"},
			{"zero CANARY_REPLICAS", "shift-canary", map[string]string{"CANARY_REPLICAS": "0"}, "CANARY_REPLICAS", `a count such as "2"`},
			{"CONTAINER not in the pod template", "shift-canary", map[string]string{"CONTAINER": "sidecar"}, "CONTAINER", "name one of the containers of the stable Deployment"},
			{"STABLE_SERVICE does not exist", "shift-canary", map[string]string{"STABLE_SERVICE": "shop-svc"}, "STABLE_SERVICE", "the Service in front of the stable Deployment"},
			{"BASELINE not a boolean", "shift-canary", map[string]string{"BASELINE": "yes"}, "BASELINE", `say "true" or "false"`},
			{"REUSE_CANARY not a boolean", "shift-canary", map[string]string{"REUSE_CANARY": "maybe"}, "REUSE_CANARY", `say "true" or "false"`},
			{"MATCH not a rule", "shift-canary", map[string]string{"MATCH": "X-Canary: always"}, "MATCH", `"header NAME: VALUE" (exact)`},
			{"MATCH with an invalid regular expression", "shift-canary", map[string]string{"MATCH": "header X-Canary ~ (yes"}, "MATCH", `"header NAME ~ REGEX"`},
			{"MATCH with a header name that is no token", "shift-canary", map[string]string{"MATCH": "header X Canary: always"}, "MATCH", `"header NAME: VALUE"`},
			{"MATCH on the replicas router", "shift-canary", map[string]string{"ROUTER": "replicas", "MATCH": "header X-Canary: always"}, "MATCH", "leave MATCH empty"},
			{"MATCH with two header rules on nginx", "shift-canary", map[string]string{"ROUTER": "nginx", "MATCH": "header X-A: 1\nheader X-B: 2"}, "MATCH", "at most one header rule"},
			{"MATCH with a cookie value nginx cannot match", "shift-canary", map[string]string{"ROUTER": "nginx", "MATCH": "cookie canary=yes"}, "MATCH", "cookie canary=always"},
			{"TEST_HOST not a host name", "shift-canary", map[string]string{"TEST_HOST": "Shop Test"}, "TEST_HOST", "give a host name"},
			{"TEST_HOST on the httproute router", "shift-canary", map[string]string{"ROUTER": "httproute", "TEST_HOST": "shop-test.example.com"}, "TEST_HOST", "leave TEST_HOST empty"},
			{"TEST_HOST the stable Route's host", "shift-canary", map[string]string{"TEST_HOST": "shop.apps.example.com"}, "TEST_HOST", "a host of its own"},
			{"MIRROR over 100", "shift-canary", map[string]string{"MIRROR": "150"}, "MIRROR", "from 0 (none) to 100"},
			{"MIRROR not a number", "shift-canary", map[string]string{"MIRROR": "half"}, "MIRROR", "from 0 (none) to 100"},
			{"MIRROR on the route router", "shift-canary", map[string]string{"MIRROR": "10"}, "MIRROR", "httproute and istio router"},
			{"MIRROR on the nginx router", "shift-canary", map[string]string{"ROUTER": "nginx", "MIRROR": "10"}, "MIRROR", "httproute and istio router"},
		}},
		{name: "release-in-progress", setup: badAppNamespace(true), cases: []badCase{
			{"unknown DECISION", "promote-or-rollback", map[string]string{"DECISION": "abort"}, "DECISION", `"promote", "rollback" or "auto"`},
			{"unknown PIPELINE_STATUS", "promote-or-rollback", map[string]string{"PIPELINE_STATUS": "Success"}, "PIPELINE_STATUS", "$(tasks.status)"},
			{"unknown VERDICT", "promote-or-rollback", map[string]string{"VERDICT": "pass"}, "VERDICT", "verify-health's VERDICT result"},
			{"DECISION auto without PIPELINE_STATUS", "promote-or-rollback", map[string]string{"PIPELINE_STATUS": ""}, "PIPELINE_STATUS", "map it in the finally task"},
			{"negative ROLLOUT_TIMEOUT", "promote-or-rollback", map[string]string{"ROLLOUT_TIMEOUT": "-1m"}, "ROLLOUT_TIMEOUT", "positive Go duration"},
			{"RELEASE_ID is not the release in progress", "promote-or-rollback", map[string]string{"DECISION": "promote", "RELEASE_ID": "shop-release-2"}, "RELEASE_ID", "id of the release in progress"},
			{"no release of APP in progress", "promote-or-rollback", map[string]string{"APP": "cart", "DECISION": "rollback"}, "APP", "check APP and NAMESPACE"},
			{"REASON too long", "promote-or-rollback", map[string]string{"REASON": strings.Repeat("x", 501)}, "REASON", "under 500 characters"},
			{"LOCK_TTL too long", "promote-or-rollback", map[string]string{"LOCK_TTL": "48h"}, "LOCK_TTL", "between 10s and 24h"},
			{"unknown NOTIFY_FORMAT", "promote-or-rollback", map[string]string{"DECISION": "rollback", "NOTIFY_FORMAT": "email"}, "NOTIFY_FORMAT", `"auto", "slack", "teams" or "webhook"`},
			{"relative CONSOLE_URL", "promote-or-rollback", map[string]string{"DECISION": "promote", "CONSOLE_URL": "console.example.com"}, "CONSOLE_URL", "the console's address"},
			{"NOTIFY_URL from the Secret not a URL", "promote-or-rollback", map[string]string{"DECISION": "rollback", "NOTIFY_URL": "hooks/x"}, "NOTIFY_URL", "key url of the Secret"},
			{"unknown APPROVAL", "verify-health", map[string]string{"APPROVAL": "manual"}, "APPROVAL", `say "none" or "required"`},
			{"APPROVAL without RELEASE_ID", "verify-health", map[string]string{"APPROVAL": "required", "RELEASE_ID": ""}, "RELEASE_ID", "an approval answers one release"},
			{"APPROVAL_TIMEOUT over a day", "verify-health", map[string]string{"APPROVAL": "required", "APPROVAL_TIMEOUT": "48h"}, "APPROVAL_TIMEOUT", "between 1s and 24h"},
			{"unknown NOTIFY_FORMAT in verify-health", "verify-health", map[string]string{"NOTIFY_FORMAT": "pager"}, "NOTIFY_FORMAT", `"auto", "slack", "teams" or "webhook"`},
			{"relative CONSOLE_URL in verify-health", "verify-health", map[string]string{"CONSOLE_URL": "/console"}, "CONSOLE_URL", "the console's address"},
			{"another IMAGE for the release in progress", "shift-canary", map[string]string{"IMAGE": digest2, "WEIGHT": "20"}, "IMAGE", "a release keeps one image"},
			{"zero INTERVAL", "verify-health", map[string]string{"INTERVAL": "0s"}, "INTERVAL", "positive Go duration"},
			{"negative INTERVAL", "verify-health", map[string]string{"INTERVAL": "-30s"}, "INTERVAL", "positive Go duration"},
			{"COUNT and DURATION both", "verify-health", map[string]string{"COUNT": "5", "DURATION": "1m"}, "DURATION", "COUNT or DURATION, not both"},
			{"negative COUNT", "verify-health", map[string]string{"COUNT": "-1"}, "COUNT", "a number of measurements"},
			{"negative INITIAL_DELAY", "verify-health", map[string]string{"INITIAL_DELAY": "-1s"}, "INITIAL_DELAY", "0s or more"},
			{"malformed PromQL in QUERIES", "verify-health", map[string]string{"PROMETHEUS_URL": "http://prometheus:9090", "QUERIES": q(`sum(rate(x{track="{{.CanaryTrack}}"}[1m])`)}, "QUERIES", "fix the PromQL"},
			{"malformed PromQL in COMPARE", "verify-health", map[string]string{"PROMETHEUS_URL": "http://prometheus:9090", "COMPARE": cmp(`sum(rate(x{track="{{.Track}}"[1m]))`)}, "COMPARE", "fix the PromQL"},
			{"COMPARE without the track", "verify-health", map[string]string{"PROMETHEUS_URL": "http://prometheus:9090", "COMPARE": cmp(`sum(rate(x[1m]))`)}, "COMPARE", "{{.Hash}}"},
			{"QUERIES threshold not a number", "verify-health", map[string]string{"PROMETHEUS_URL": "http://prometheus:9090", "QUERIES": "- name: q\n  query: up\n  threshold: '< low'\n"}, "QUERIES", `threshold such as "< 0.01"`},
			{"HTTP_URLS not a URL", "verify-health", map[string]string{"HTTP_URLS": "shop-canary:8080/healthz"}, "HTTP_URLS", "absolute http(s) URL"},
			{"HTTP_URLS not http", "verify-health", map[string]string{"HTTP_URLS": "ftp://shop-canary/"}, "HTTP_URLS", "absolute http(s) URL"},
			{"PROMETHEUS_URL without a scheme", "verify-health", map[string]string{"PROMETHEUS_URL": "prometheus:9090", "QUERIES": q("up")}, "PROMETHEUS_URL", "thanos-querier"},
			{"PROMETHEUS_URL without queries", "verify-health", map[string]string{"PROMETHEUS_URL": "http://prometheus:9090"}, "QUERIES", "give QUERIES or COMPARE"},
			{"zero HTTP_TIMEOUT", "verify-health", map[string]string{"HTTP_URLS": "http://shop-canary:8080/", "HTTP_TIMEOUT": "0s"}, "HTTP_TIMEOUT", "positive Go duration"},
			{"unknown NO_DATA", "verify-health", map[string]string{"NO_DATA": "ignore"}, "NO_DATA", `"inconclusive", "fail" or "pass"`},
			{"APP Deployment does not exist", "verify-health", map[string]string{"APP": "cart"}, "APP", "oc get deploy"},
			{"CANARY_DEPLOYMENT does not exist", "verify-health", map[string]string{"CANARY_DEPLOYMENT": "shop-green"}, "CANARY_DEPLOYMENT", "run shift-canary first"},
			{"COMPARE_AGAINST baseline without one", "verify-health", map[string]string{"COMPARE_AGAINST": "baseline", "PROMETHEUS_URL": "http://prometheus:9090",
				"COMPARE": cmp(`sum(rate(x{track="{{.Track}}"}[1m]))`)}, "COMPARE_AGAINST", "BASELINE=true"},
			{"INSECURE_SKIP_TLS_VERIFY with a CA file", "verify-health", map[string]string{"HTTP_URLS": "https://shop-canary:8443/", "HTTP_CA_FILE": missingFile,
				"INSECURE_SKIP_TLS_VERIFY": "true"}, "INSECURE_SKIP_TLS_VERIFY", "not both"},
			{"HTTP_CA_FILE unreadable", "verify-health", map[string]string{"HTTP_URLS": "https://shop-canary:8443/", "HTTP_CA_FILE": missingFile}, "HTTP_CA_FILE", "readable PEM file"},
			{"PROMETHEUS_TOKEN_FILE unreadable", "verify-health", map[string]string{"PROMETHEUS_URL": "https://prometheus:9091", "QUERIES": q("up"),
				"PROMETHEUS_TOKEN_FILE": missingFile}, "PROMETHEUS_TOKEN_FILE", "readable token file"},
			{"QUERIES threshold NaN", "verify-health", map[string]string{"PROMETHEUS_URL": "http://127.0.0.1:1", "QUERIES": "- name: q\n  query: up\n  threshold: '< NaN'\n"},
				"QUERIES", "NaN is not a finite number"},
			{"QUERIES threshold +Inf", "verify-health", map[string]string{"PROMETHEUS_URL": "http://127.0.0.1:1", "QUERIES": "- name: q\n  query: up\n  threshold: '<= +Inf'\n"},
				"QUERIES", `threshold such as "< 0.01"`},
			{"CONFIDENCE NaN", "verify-health", map[string]string{"CONFIDENCE": "NaN"}, "CONFIDENCE", "between 0.5 and 1"},
			{"STATISTICS unknown", "verify-health", map[string]string{"STATISTICS": "bayes"}, "STATISTICS", `"sequential"`},
			{"ALPHA too big", "verify-health", map[string]string{"ALPHA": "0.9"}, "ALPHA", "at most 0.5"},
			{"COMPARE errors without requests", "verify-health", map[string]string{"PROMETHEUS_URL": "http://prometheus:9090",
				"COMPARE": "- name: e\n  errors: 'sum(x{track=\"{{.Track}}\"})'\n"}, "COMPARE", "give both errors and requests"},
			{"TOLERANCE +Inf", "verify-health", map[string]string{"TOLERANCE": "+Inf"}, "TOLERANCE", "0 or more"},
			{"HTTP_MIN_SUCCESS NaN", "verify-health", map[string]string{"HTTP_URLS": "http://127.0.0.1:1/", "HTTP_MIN_SUCCESS": "NaN"}, "HTTP_MIN_SUCCESS", "between 0 and 1"},
			{"HTTP_RATE NaN", "verify-health", map[string]string{"HTTP_URLS": "http://127.0.0.1:1/", "HTTP_RATE": "NaN"}, "HTTP_RATE", "between 0 and 1000"},
			{"FAILURE_LIMIT never exceeded", "verify-health", map[string]string{"COUNT": "3", "FAILURE_LIMIT": "3"}, "FAILURE_LIMIT", "give less than 3"},
			{"CONSECUTIVE_FAILURE_LIMIT never exceeded", "verify-health", map[string]string{"COUNT": "2", "CONSECUTIVE_FAILURE_LIMIT": "5"}, "CONSECUTIVE_FAILURE_LIMIT", "give less than 2"},
			{"EVIDENCE_DIR not writable", "verify-health", map[string]string{"EVIDENCE_DIR": filepath.Join(notADir, "evidence")}, "EVIDENCE_DIR", "fsGroup: 65532"},
			{"WEBHOOKS url not absolute", "verify-health", map[string]string{"WEBHOOKS": "- {name: smoke, url: 'tests.team.svc/run'}"}, "WEBHOOKS", "absolute http(s) URL"},
			{"WEBHOOKS timeout not a duration", "verify-health", map[string]string{"WEBHOOKS": "- {name: smoke, url: 'http://127.0.0.1:1/', timeout: soon}"}, "WEBHOOKS", "Go duration above 0s"},
			{"WEBHOOKS successField not a path", "verify-health", map[string]string{"WEBHOOKS": "- {name: smoke, url: 'http://127.0.0.1:1/', successField: '{.a[}'}"}, "WEBHOOKS", "dotted path"},
			{"WEBHOOKS not a list", "verify-health", map[string]string{"WEBHOOKS": "http://127.0.0.1:1/"}, "WEBHOOKS", "YAML list of {name, url"},
			{"JOBS ConfigMap missing", "verify-health", map[string]string{"JOBS": "- {name: smoke, configMap: no-such-template}"}, "JOBS", "create the ConfigMap"},
			{"JOBS template not a Job", "verify-health", map[string]string{"JOBS": "- {name: smoke, configMap: not-a-job}"}, "JOBS", "batch/v1 Job"},
			{"JOBS timeout not a duration", "verify-health", map[string]string{"JOBS": "- {name: smoke, configMap: not-a-job, timeout: 1 hour}"}, "JOBS", "positive Go duration"},
			{"HTTP_METHOD unknown", "verify-health", map[string]string{"HTTP_URLS": "http://127.0.0.1:1/", "HTTP_METHOD": "FETCH"}, "HTTP_METHOD", "GET, HEAD"},
			{"HTTP_BODY with GET", "verify-health", map[string]string{"HTTP_URLS": "http://127.0.0.1:1/", "HTTP_BODY": "{}"}, "HTTP_BODY", "POST, PUT or PATCH"},
			{"HTTP_URLS unknown placeholder", "verify-health", map[string]string{"HTTP_URLS": "http://{{.CanaryHost}}:8080/"}, "HTTP_URLS", "{{.CanaryService}}"},
		}},
	}
	total := 0
	for _, g := range groups {
		total += len(g.cases)
	}
	if total < 45 {
		t.Fatalf("%d cases; the table keeps at least 45", total)
	}
	t.Cleanup(func() { t.Logf("%d bad-input cases in %s", total, time.Since(t0).Round(time.Millisecond)) })

	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			ns, base := g.setup(t)
			before := namespaceState(t, ns)
			users := map[string]string{} // case name -> its ServiceAccount's user name
			t.Run("cases", func(t *testing.T) {
				for i, c := range g.cases {
					sa := fmt.Sprintf("bad-%02d", i)
					users[c.name] = "system:serviceaccount:" + ns + ":" + sa
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						env := map[string]string{}
						for k, v := range base[c.step+"/"] {
							env[k] = v
						}
						for k, v := range c.env {
							env[k] = v
						}
						kc := stepsKubeconfigAs(t, ns, sa, installedRole(t, env["ROUTER"]))
						r := runStep(t, c.step, kc, env)
						if r.code != 2 {
							t.Errorf("exit %d; want 2", r.code)
						}
						if !strings.Contains(r.stderr, "param "+c.param+":") {
							t.Errorf("stderr does not name param %s:\n%s", c.param, r.stderr)
						}
						if !strings.Contains(r.stderr, c.fix) {
							t.Errorf("stderr does not say how to fix it (%q):\n%s", c.fix, r.stderr)
						}
						if len(r.results) != 0 {
							t.Errorf("results written for bad input: %v", r.results)
						}
						auditSentinel(t, kc, ns)
					})
				}
			})
			byUser := auditMutations(t, users)
			for _, c := range g.cases {
				if m := byUser[users[c.name]]; len(m) > 0 {
					t.Errorf("%s: %s made %d mutating requests: %v", c.name, users[c.name], len(m), m)
				}
			}
			if after := namespaceState(t, ns); after != before {
				t.Errorf("the namespace changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// badBuildNamespace has BuildConfig "app" (S2I) and "dock" (Docker strategy), and no builds.
func badBuildNamespace(t *testing.T) (string, map[string]map[string]string) {
	t.Helper()
	ns := devclustertest.Namespace(t, cluster)
	bc := buildclient.NewForConfigOrDie(cluster.Config())
	dock := newBuildConfig("dock", nil)
	dock.Spec.Strategy = buildv1.BuildStrategy{Type: buildv1.DockerBuildStrategyType, DockerStrategy: &buildv1.DockerBuildStrategy{}}
	for _, b := range []*buildv1.BuildConfig{newBuildConfig("app", nil), dock} {
		if _, err := bc.BuildV1().BuildConfigs(ns).Create(context.Background(), b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return ns, map[string]map[string]string{"start-build/": {"BUILD_CONFIG": "app"}, "wait-build/": {}}
}

// badAppNamespace is application shop behind a Route, stable (or with release shop-release-1 at 10% when
// inProgress).
func badAppNamespace(inProgress bool) func(t *testing.T) (string, map[string]map[string]string) {
	return func(t *testing.T) (string, map[string]map[string]string) {
		t.Helper()
		a := newApp(t, "route", 2)
		a.jobTemplate("not-a-job", "apiVersion: apps/v1\nkind: Deployment\n") // JOBS: a template that is no Job
		if inProgress {
			if r := a.shift(10, nil); r.code != 0 {
				t.Fatalf("shift: exit %d", r.code)
			}
		}
		release := map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1"}
		with := func(kv ...string) map[string]string {
			m := map[string]string{}
			for k, v := range release {
				m[k] = v
			}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		return a.ns, map[string]map[string]string{
			"shift-canary/":        with("ROUTER", "route", "IMAGE", canaryImage, "WEIGHT", "10", "READY_TIMEOUT", "30s"),
			"promote-or-rollback/": with("DECISION", "auto", "PIPELINE_STATUS", "Succeeded"),
			"verify-health/":       with("INTERVAL", "1s", "COUNT", "1"),
		}
	}
}

// auditSentinel makes one request as kubeconfig's user after its step ended: when the audit log has it, it has
// the step's requests too.
func auditSentinel(t *testing.T, kubeconfig, ns string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kubernetes.NewForConfigOrDie(cfg).CoordinationV1().Leases(ns).Get(context.Background(), sentinelLease, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("sentinel request: %v", err)
	}
}

// auditEvent is what the tests read of kube-apiserver's audit events.
type auditEvent struct {
	AuditID string `json:"auditID"`
	Verb    string `json:"verb"`
	User    struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Name        string `json:"name"`
	} `json:"objectRef"`
}

// auditMutations reads the audit log once every user's sentinel is in it, and returns each user's mutating
// requests ("verb resource/name"). The OpenShift shim authorizes buildconfigs/instantiate with a
// SelfSubjectAccessReview as the caller and then creates the Build as itself: that review is how an instantiate
// shows in the audit log under the caller's name, so it counts as a mutation here.
func auditMutations(t *testing.T, users map[string]string) map[string][]string {
	t.Helper()
	want := map[string]bool{}
	for _, u := range users {
		want[u] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen := map[string]bool{}
		out := map[string][]string{}
		ids := map[string]bool{}
		f, err := os.Open(cluster.AuditLog)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), "system:serviceaccount:") {
				continue
			}
			var ev auditEvent
			if json.Unmarshal(line, &ev) != nil || !want[ev.User.Username] || ids[ev.AuditID] {
				continue
			}
			ids[ev.AuditID] = true
			if ev.ObjectRef != nil && ev.ObjectRef.Resource == "leases" && ev.ObjectRef.Name == sentinelLease {
				seen[ev.User.Username] = true
				continue
			}
			if mutatingVerbs[ev.Verb] && (ev.ObjectRef == nil || ev.ObjectRef.Resource != "selfsubjectreviews") {
				what := ev.Verb
				if ev.ObjectRef != nil {
					what += " " + strings.TrimSuffix(ev.ObjectRef.Resource+"/"+ev.ObjectRef.Subresource, "/") + " " + ev.ObjectRef.Name
				}
				out[ev.User.Username] = append(out[ev.User.Username], what)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if len(seen) == len(want) {
			return out
		}
		if time.Now().After(deadline) {
			var missing []string
			for u := range want {
				if !seen[u] {
					missing = append(missing, u)
				}
			}
			sort.Strings(missing)
			t.Fatalf("the audit log %s has no sentinel request of %v", cluster.AuditLog, missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// namespaceState is what a step could change in ns, for comparing: Deployments (generation, images,
// annotations), Services (selector, annotations), Leases (holder, annotations), Routes, Ingresses, BuildConfigs
// (last version), Builds, and canaryline's Events.
func namespaceState(t *testing.T, ns string) string {
	t.Helper()
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(cluster.Config())
	state := map[string]any{}
	deps, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deps.Items {
		var images []string
		for _, c := range d.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		state["deployment/"+d.Name] = []any{d.Generation, images, d.Annotations, d.Spec.Replicas}
	}
	svcs, err := kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs.Items {
		state["service/"+s.Name] = []any{s.Spec.Selector, s.Annotations}
	}
	leases, err := kube.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Items {
		state["lease/"+l.Name] = []any{l.Spec.HolderIdentity, l.Annotations}
	}
	routes, err := routeclient.NewForConfigOrDie(cluster.Config()).RouteV1().Routes(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes.Items {
		state["route/"+r.Name] = []any{r.Spec, r.Annotations}
	}
	ings, err := kube.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ings.Items {
		state["ingress/"+i.Name] = i.Generation
	}
	bc := buildclient.NewForConfigOrDie(cluster.Config())
	bcs, err := bc.BuildV1().BuildConfigs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bcs.Items {
		state["buildconfig/"+b.Name] = []any{b.Generation, b.Status.LastVersion}
	}
	builds, err := bc.BuildV1().Builds(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range builds.Items {
		state["build/"+b.Name] = b.Status.Phase
	}
	evs, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs.Items {
		if e.Source.Component == "canaryline" {
			n++
		}
	}
	state["events/canaryline"] = n
	data, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
