package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	buildv1 "github.com/openshift/api/build/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/osclient"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Labels and annotations start-build puts on the Builds it starts (through the BuildRequest).
const (
	// RunKeyLabel identifies the run (PipelineRun or TaskRun, and commit) that started a build, so that a retry of
	// the same run finds it instead of starting another.
	RunKeyLabel         = "canaryline.dev/start-key"
	PipelineRunLabel    = "tekton.dev/pipelineRun"
	TaskRunLabel        = "tekton.dev/taskRun"
	CommitAnnotation    = "canaryline.dev/commit"
	startedByAnnotation = "canaryline.dev/started-by"
)

// Started is what start-build hands on.
type Started struct {
	Build       string
	Number      int64
	BuildConfig string
	Reused      bool
}

// Results are start-build's Tekton results.
func (s Started) Results() map[string]string {
	return map[string]string{"BUILD_NAME": s.Build, "BUILD_NUMBER": strconv.FormatInt(s.Number, 10), "BUILD_CONFIG": s.BuildConfig}
}

// Start instantiates the BuildConfig for cfg's commit, or finds the build this run started before.
// nss reads namespaces, to tell a missing namespace from a missing BuildConfig (nil: not told).
func Start(ctx context.Context, cfg *StartConfig, ns string, c osclient.BuildV1Interface, nss step.NamespaceGetter, log *slog.Logger) (Started, error) {
	s := &starter{cfg: cfg, ns: ns, c: c, log: log, key: runKey(ns, cfg)}
	if err := s.readBuildConfig(ctx, nss); err != nil {
		return Started{}, err
	}
	req, err := buildRequest(cfg, s.bc.Name, s.key)
	if err != nil {
		return Started{}, err
	}
	b, reused, err := s.start(ctx, req)
	if err != nil {
		return Started{}, err
	}
	return s.started(b, reused), nil
}

// starter is one run of start-build: its BuildConfig, and the key of its run.
type starter struct {
	cfg *StartConfig
	ns  string
	c   osclient.BuildV1Interface
	log *slog.Logger
	key string

	bc *buildv1.BuildConfig
}

// readBuildConfig reads the BuildConfig, and checks that its strategy takes the options given.
func (s *starter) readBuildConfig(ctx context.Context, nss step.NamespaceGetter) error {
	cfg, ns := s.cfg, s.ns
	bc, err := s.c.BuildConfigs(ns).Get(ctx, cfg.BuildConfig, metav1.GetOptions{})
	if err != nil {
		if p := step.NamespaceProblem(ctx, err, ns, "get buildconfigs", nss); p != nil {
			return p
		}
		return apiError(err, "get", "buildconfigs", ns, cfg.BuildConfig, notFoundBuildConfig(ns, cfg.BuildConfig))
	}
	if bc.Spec.Strategy.DockerStrategy == nil && (cfg.BuildArgs != "" || cfg.NoCache) {
		return step.Invalid("BUILD_ARGS", "leave BUILD_ARGS and NO_CACHE empty, or use a BuildConfig with the Docker strategy",
			"BuildConfig %s does not use the Docker strategy", describe(ns, bc.Name))
	}
	if bc.Spec.Strategy.SourceStrategy == nil && cfg.Incremental != "" {
		return step.Invalid("INCREMENTAL", "leave INCREMENTAL empty, or use a BuildConfig with the Source (S2I) strategy",
			"BuildConfig %s does not use the Source strategy", describe(ns, bc.Name))
	}
	s.bc = bc
	return nil
}

// start starts the build, or finds the one this run started. Starting a build is not idempotent: when an attempt
// fails for a passing reason, the build may have been created before the answer was lost. So each attempt first
// looks for this run's build (by its run key), and instantiate is sent once per attempt. Without a run key only a
// refused request (429) is tried again.
func (s *starter) start(ctx context.Context, req *buildv1.BuildRequest) (b *buildv1.Build, reused bool, err error) {
	attempt, listing := 0, false
	err = retry.OnError(step.APIBackoff, func(err error) bool {
		return step.IsTransient(err) && (s.key != "" || apierrors.IsTooManyRequests(err))
	}, func() error {
		attempt++
		prev, lerr := s.findEarlier(ctx, attempt)
		if listing = lerr != nil; listing {
			return lerr
		}
		if prev != nil {
			b, reused = prev, attempt == 1 // found later, it is the build a lost attempt started
			return nil
		}
		var err error
		b, err = s.c.BuildConfigs(s.ns).Instantiate(step.WithoutTransportRetry(ctx), s.bc.Name, req, metav1.CreateOptions{})
		if err != nil && step.IsTransient(err) {
			s.log.Warn("starting the build failed, trying again", "attempt", attempt, "error", err)
		}
		return err
	})
	if err != nil && listing {
		return nil, false, apiError(err, "list", "builds", s.ns, "", notFound{})
	}
	if err != nil {
		return nil, false, apiError(err, "create", "buildconfigs/instantiate", s.ns, s.bc.Name, notFoundBuildConfig(s.ns, s.bc.Name))
	}
	return b, reused, nil
}

// findEarlier is the build this run started before (by its run key), unless it ended badly: nil when there is
// none, or no run key.
func (s *starter) findEarlier(ctx context.Context, attempt int) (*buildv1.Build, error) {
	if s.key == "" {
		return nil, nil
	}
	list, err := s.c.Builds(s.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{
		buildv1.BuildConfigLabel: shortLabel(s.bc.Name), RunKeyLabel: s.key}.String()})
	if err != nil {
		return nil, err
	}
	prev := newest(list.Items)
	if prev == nil {
		return nil, nil
	}
	switch prev.Status.Phase {
	case buildv1.BuildPhaseFailed, buildv1.BuildPhaseError, buildv1.BuildPhaseCancelled:
		if attempt == 1 {
			s.log.Info("this run's earlier build ended; starting a new one", "build", prev.Name, "phase", prev.Status.Phase)
		}
		return nil, nil
	}
	return prev, nil
}

// started says which build was started, or reused, and hands it on.
func (s *starter) started(b *buildv1.Build, reused bool) Started {
	cfg, bc := s.cfg, s.bc
	n, _ := strconv.ParseInt(b.Annotations[buildv1.BuildNumberAnnotation], 10, 64)
	if reused {
		s.log.Info("reusing the build this run started before", "build", b.Name, "phase", b.Status.Phase,
			"buildconfig", bc.Name, "commit", cfg.Commit)
		return Started{Build: b.Name, Number: n, BuildConfig: bc.Name, Reused: true}
	}
	commit := cfg.Commit
	if commit == "" {
		commit = "(the BuildConfig's ref)"
	}
	s.log.Info(fmt.Sprintf("started build %s of BuildConfig %s for commit %s", b.Name, describe(s.ns, bc.Name), commit),
		"build", b.Name, "number", n, "strategy", strategy(bc), "triggeredBy", triggeredBy(cfg))
	return Started{Build: b.Name, Number: n, BuildConfig: bc.Name}
}

func buildRequest(cfg *StartConfig, bc, key string) (*buildv1.BuildRequest, error) {
	req := &buildv1.BuildRequest{
		ObjectMeta:  metav1.ObjectMeta{Name: bc, Labels: map[string]string{}, Annotations: map[string]string{startedByAnnotation: "start-build"}},
		TriggeredBy: []buildv1.BuildTriggerCause{{Message: triggeredBy(cfg)}},
	}
	if key != "" {
		req.Labels[RunKeyLabel] = key
	}
	if cfg.PipelineRun != "" && len(cfg.PipelineRun) <= 63 {
		req.Labels[PipelineRunLabel] = cfg.PipelineRun
	}
	if cfg.TaskRun != "" && len(cfg.TaskRun) <= 63 {
		req.Labels[TaskRunLabel] = cfg.TaskRun
	}
	if cfg.Commit != "" {
		name, email := author(cfg.CommitAuthor)
		req.Revision = &buildv1.SourceRevision{Type: buildv1.BuildSourceGit, Git: &buildv1.GitSourceRevision{
			Commit: cfg.Commit, Message: cfg.CommitMessage, Author: buildv1.SourceControlUser{Name: name, Email: email}}}
		req.Annotations[CommitAnnotation] = cfg.Commit
	}
	var err error
	if req.Env, err = parseEnvLines("BUILD_ENV", cfg.BuildEnv); err != nil {
		return nil, err
	}
	args, err := parseEnvLines("BUILD_ARGS", cfg.BuildArgs)
	if err != nil {
		return nil, err
	}
	if len(args) > 0 || cfg.NoCache {
		req.DockerStrategyOptions = &buildv1.DockerStrategyOptions{BuildArgs: args}
		if cfg.NoCache {
			req.DockerStrategyOptions.NoCache = &cfg.NoCache
		}
	}
	if cfg.Incremental != "" {
		inc := cfg.Incremental == "true"
		req.SourceStrategyOptions = &buildv1.SourceStrategyOptions{Incremental: &inc}
	}
	return req, nil
}

// runKey identifies this run's build: the same PipelineRun (or TaskRun) and commit give the same key. Without a
// run name (a local run) there is no key, and every run starts a build.
func runKey(ns string, cfg *StartConfig) string {
	run := cfg.PipelineRun
	if run == "" {
		run = cfg.TaskRun
	}
	if run == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(ns + "/" + cfg.BuildConfig + "/" + run + "/" + cfg.Commit))
	return hex.EncodeToString(sum[:])[:40]
}

func triggeredBy(cfg *StartConfig) string {
	switch {
	case cfg.PipelineRun != "":
		return "PipelineRun " + cfg.PipelineRun
	case cfg.TaskRun != "":
		return "TaskRun " + cfg.TaskRun
	}
	return "canaryline start-build"
}

func strategy(bc *buildv1.BuildConfig) string {
	switch {
	case bc.Spec.Strategy.SourceStrategy != nil:
		return "Source"
	case bc.Spec.Strategy.DockerStrategy != nil:
		return "Docker"
	}
	return string(bc.Spec.Strategy.Type)
}

func newest(bs []buildv1.Build) *buildv1.Build {
	if len(bs) == 0 {
		return nil
	}
	num := func(b *buildv1.Build) int64 {
		n, _ := strconv.ParseInt(b.Annotations[buildv1.BuildNumberAnnotation], 10, 64)
		return n
	}
	sort.Slice(bs, func(i, j int) bool { return num(&bs[i]) > num(&bs[j]) })
	return &bs[0]
}

func shortLabel(s string) string {
	if len(s) > 63 {
		return s[:63]
	}
	return s
}

func notFoundBuildConfig(ns, name string) notFound {
	return notFound{Param: "BUILD_CONFIG", Msg: fmt.Sprintf("BuildConfig %s does not exist", describe(ns, name)),
		Fix: fmt.Sprintf("give the name of an existing BuildConfig (oc get bc -n %s), or create it once for the application, for example "+
			"`oc new-app BUILDER_IMAGE~REPO_URL --name=%s --strategy=source -n %s` (S2I), or --strategy=docker for a "+
			"repository with a Dockerfile. If oc new-app answers \"No language matched the source repository\", it "+
			"could not detect the language: name the builder image explicitly before the ~ (for example "+
			"registry.access.redhat.com/ubi9/go-toolset~REPO_URL), or use --strategy=docker", ns, name, ns)}
}

// notFound is what a missing object means: the param that named it, and what to do.
type notFound struct{ Param, Msg, Fix string }

// apiError turns an API error into a step error: a missing object or a missing permission is bad input (exit 2)
// that says what to do; anything else is an error.
func apiError(err error, verb, resource, ns, name string, missing notFound) error {
	obj := resource
	if name != "" {
		obj += " " + describe(ns, name)
	}
	switch {
	case apierrors.IsNotFound(err) && missing.Msg != "":
		return &step.InvalidError{Param: missing.Param, Msg: missing.Msg, Fix: missing.Fix}
	case apierrors.IsForbidden(err):
		return &step.InvalidError{Msg: fmt.Sprintf("permission denied: cannot %s %s in namespace %s: %v", verb, resource, ns, err),
			Fix: fmt.Sprintf("grant the step's ServiceAccount the verb %q on %q in API group %q (the Role shipped with canaryline has it)", verb, resource, apiGroup(resource))}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: stopped: %w", verb, obj, err)
	}
	return fmt.Errorf("%s %s: %w", verb, obj, err)
}

func apiGroup(resource string) string {
	if strings.HasPrefix(resource, "imagestream") {
		return "image.openshift.io"
	}
	return "build.openshift.io"
}
