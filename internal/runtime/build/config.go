// Package build holds the start-build and wait-build steps: build the pushed commit with the application's
// OpenShift BuildConfig, follow the build, and hand on the image pinned by digest (or resolve an image that was
// built elsewhere to its digest).
package build

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/canaryline/canaryline/internal/runtime/step"
)

// StartConfig is start-build's configuration; each field is a Task param passed as the env variable named here.
type StartConfig struct {
	step.Common
	// Namespace of the BuildConfig; the step's own namespace when empty.
	Namespace string `env:"NAMESPACE"`
	// BuildConfig to instantiate; App's name when empty (oc new-app names both after the application).
	BuildConfig string `env:"BUILD_CONFIG"`
	App         string `env:"APP"`
	// Commit to build (the pushed revision); the BuildConfig's ref when empty.
	Commit        string `env:"COMMIT"`
	CommitAuthor  string `env:"COMMIT_AUTHOR"` // "Name <email>" or a name
	CommitMessage string `env:"COMMIT_MESSAGE"`
	// BuildEnv is extra build environment, one NAME=value a line.
	BuildEnv string `env:"BUILD_ENV"`
	// BuildArgs are Docker strategy build args, one NAME=value a line.
	BuildArgs string `env:"BUILD_ARGS"`
	// NoCache makes a Docker strategy build use no cache.
	NoCache bool `env:"NO_CACHE, default=false"`
	// Incremental is "true" or "false" for an S2I incremental build; empty keeps the BuildConfig's.
	Incremental string `env:"INCREMENTAL"`
	// PipelineRun and TaskRun name the run ($(context.pipelineRun.name), $(context.taskRun.name)): the build's
	// TriggeredBy message, and the key that lets a retry of the same run find the build it started.
	PipelineRun string `env:"PIPELINE_RUN"`
	TaskRun     string `env:"TASK_RUN"`
}

var commitRE = regexp.MustCompile(`^([0-9a-f]{7,40}|[0-9a-f]{64})$`)

// Validate checks every param before anything is read from or written to the cluster.
func (c *StartConfig) Validate() error {
	param := "BUILD_CONFIG"
	if c.BuildConfig == "" {
		c.BuildConfig, param = c.App, "APP"
	}
	if c.BuildConfig == "" {
		return step.Invalid("BUILD_CONFIG", "give the name of the application's BuildConfig (oc get bc), or APP when they share it", "is required")
	}
	if errs := validation.IsDNS1123Subdomain(c.BuildConfig); len(errs) > 0 {
		return step.Invalid(param, "use the BuildConfig's name as `oc get bc` shows it", "%q is not a valid name: %s", c.BuildConfig, strings.Join(errs, "; "))
	}
	if err := validNamespace(c.Namespace); err != nil {
		return err
	}
	if c.Commit != "" && !commitRE.MatchString(c.Commit) {
		return step.Invalid("COMMIT", "pass the full commit SHA, e.g. $(params.revision) from the push event (7 to 40 lowercase hex digits, or 64)", "%q is not a commit SHA", c.Commit)
	}
	if c.Commit == "" && (c.CommitAuthor != "" || c.CommitMessage != "") {
		return step.Invalid("COMMIT", "set COMMIT too, or leave COMMIT_AUTHOR and COMMIT_MESSAGE empty", "is empty while COMMIT_AUTHOR or COMMIT_MESSAGE is set")
	}
	if _, err := parseEnvLines("BUILD_ENV", c.BuildEnv); err != nil {
		return err
	}
	if _, err := parseEnvLines("BUILD_ARGS", c.BuildArgs); err != nil {
		return err
	}
	switch c.Incremental {
	case "", "true", "false":
	default:
		return step.Invalid("INCREMENTAL", `say "true" or "false", or leave it empty to keep the BuildConfig's setting`, "%q is not a boolean", c.Incremental)
	}
	for param, v := range map[string]string{"PIPELINE_RUN": c.PipelineRun, "TASK_RUN": c.TaskRun} {
		if v != "" && len(validation.IsDNS1123Subdomain(v)) > 0 {
			return step.Invalid(param, "map it to $(context.pipelineRun.name) or $(context.taskRun.name)", "%q is not a run name", v)
		}
	}
	return nil
}

// WaitConfig is wait-build's configuration.
type WaitConfig struct {
	step.Common
	Namespace string `env:"NAMESPACE"`
	// BuildName is the build to follow (start-build's BUILD_NAME result).
	BuildName string `env:"BUILD_NAME"`
	// Image is an image built elsewhere: no build is followed; the image is resolved to its digest.
	Image string `env:"IMAGE"`
	// InsecureRegistry allows plain HTTP (or an untrusted certificate) for Image's registry.
	InsecureRegistry bool `env:"INSECURE_REGISTRY, default=false"`
	// Timeout for the build to end; the build is cancelled when it runs out.
	Timeout time.Duration `env:"TIMEOUT, default=30m"`
	// CancelOnStop cancels the build when the step stops early: on Timeout, or on SIGTERM from a Tekton timeout
	// or cancellation.
	CancelOnStop bool `env:"CANCEL_ON_STOP, default=true"`
	// FollowLogs streams the build log to the step's log.
	FollowLogs bool `env:"FOLLOW_LOGS, default=true"`
}

// Validate checks every param before anything is read from or written to the cluster.
func (c *WaitConfig) Validate() error {
	switch {
	case c.BuildName == "" && c.Image == "":
		return step.Invalid("BUILD_NAME", "pass start-build's BUILD_NAME result, or IMAGE for an image built elsewhere", "BUILD_NAME and IMAGE are both empty")
	case c.BuildName != "" && c.Image != "":
		return step.Invalid("IMAGE", "give BUILD_NAME to follow a build, or IMAGE to use an image built elsewhere, not both", "is set together with BUILD_NAME %q", c.BuildName)
	}
	if c.BuildName != "" {
		if errs := validation.IsDNS1123Subdomain(c.BuildName); len(errs) > 0 {
			return step.Invalid("BUILD_NAME", "pass start-build's BUILD_NAME result", "%q is not a valid build name: %s", c.BuildName, strings.Join(errs, "; "))
		}
	}
	if c.Image != "" {
		if _, err := parseImage(c.Image, c.InsecureRegistry); err != nil {
			return err
		}
	}
	if c.Timeout <= 0 {
		return step.Invalid("TIMEOUT", "give a positive Go duration such as 30m", "%s is not positive", c.Timeout)
	}
	return validNamespace(c.Namespace)
}

func validNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return step.Invalid("NAMESPACE", "give a namespace name, or leave it empty for the step's own namespace", "%q is not a valid namespace: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}

// parseEnvLines reads NAME=value lines; blank lines and lines starting with # are skipped.
func parseEnvLines(param, s string) ([]corev1.EnvVar, error) {
	var out []corev1.EnvVar
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, step.Invalid(param, "write one NAME=value a line", "line %d %q has no '='", i+1, line)
		}
		if errs := validation.IsEnvVarName(k); len(errs) > 0 {
			return nil, step.Invalid(param, "write one NAME=value a line", "line %d: %q is not a valid variable name: %s", i+1, k, strings.Join(errs, "; "))
		}
		out = append(out, corev1.EnvVar{Name: k, Value: v})
	}
	return out, nil
}

// author reads "Name <email>" or a bare name.
func author(s string) (name, email string) {
	if i := strings.Index(s, "<"); i >= 0 && strings.HasSuffix(s, ">") {
		return strings.TrimSpace(s[:i]), s[i+1 : len(s)-1]
	}
	return s, ""
}

func describe(ns, name string) string { return fmt.Sprintf("%s/%s", ns, name) }
