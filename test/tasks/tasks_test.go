// Package tasks checks the Tekton Tasks in tasks/ against Tekton's own validation and against the step configs
// they feed: every param reaches the binary through env (never script), every env variable a step reads is set.
package tasks

import (
	"github.com/canaryline/canaryline/internal/tools/image"

	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/runtime/build"
	"github.com/canaryline/canaryline/internal/runtime/health"
	"github.com/canaryline/canaryline/internal/runtime/release"
)

// configs are the step configurations, by Task name.
var configs = map[string]any{
	"start-build":         build.StartConfig{},
	"wait-build":          build.WaitConfig{},
	"shift-canary":        release.ShiftConfig{},
	"promote-or-rollback": release.DecideConfig{},
	"verify-health":       health.Config{},
}

// required are params without a default: the ones a Task cannot run without.
var required = map[string]bool{"BUILD_CONFIG": true, "APP": true, "IMAGE": true, "WEIGHT": true}

// libraryEnv are variables read by libraries, not by the Config: DOCKER_CONFIG by go-containerregistry's keychain.
var libraryEnv = map[string]bool{"DOCKER_CONFIG": true}

// hubCategories is the Tekton Hub's list.
var hubCategories = []string{"Automation", "Build Tools", "CLI", "Cloud", "Code Quality", "Continuous Integration",
	"Deployment", "Developer Tools", "Image Build", "Integration & Delivery", "Git", "Kubernetes", "Messaging",
	"Monitoring", "Networking", "Openshift", "Publishing", "Security", "Storage", "Testing"}

func loadTask(t *testing.T, name string) *v1.Task {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../tasks", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	task := &v1.Task{}
	if err := yaml.UnmarshalStrict(data, task); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return task
}

// envNames lists the env tags of a Config, embedded structs included.
func envNames(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous || (f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "") {
			out = append(out, envNames(f.Type)...)
			continue
		}
		if tag := f.Tag.Get("env"); tag != "" {
			out = append(out, strings.TrimSpace(strings.Split(tag, ",")[0]))
		}
	}
	return out
}

func TestTasks(t *testing.T) {
	t.Parallel()
	for name, cfg := range configs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			task := loadTask(t, name)
			if task.Name != name {
				t.Errorf("metadata.name %q", task.Name)
			}
			if err := task.Validate(context.Background()); err != nil {
				t.Errorf("Tekton's validation: %v", err)
			}
			if len(task.Spec.Steps) != 1 {
				t.Fatalf("%d steps; want 1", len(task.Spec.Steps))
			}
			s := task.Spec.Steps[0]
			if s.Script != "" || !slices.Equal(s.Command, []string{"/usr/local/bin/" + name}) || len(s.Args) != 0 {
				t.Errorf("step runs script %q command %v args %v; want the step binary and no script", s.Script, s.Command, s.Args)
			}
			if !regexp.MustCompile(`^[a-z0-9.-]+\.[a-z]+/[a-z0-9/-]+:v[0-9.]+`).MatchString(s.Image) {
				t.Errorf("image %q is not fully qualified with a version", s.Image)
			}

			env := map[string]string{}
			secretNames := map[string]bool{} // params naming the Secret an env variable comes from
			for _, e := range s.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					secretNames[e.ValueFrom.SecretKeyRef.Name] = true
					if e.ValueFrom.SecretKeyRef.Optional == nil || !*e.ValueFrom.SecretKeyRef.Optional {
						t.Errorf("env %s comes from a Secret that must exist: make it optional", e.Name)
					}
				}
			}
			// Each param reaches the binary as the env variable of the same name, or names the Secret one comes from.
			for _, p := range task.Spec.Params {
				if env[p.Name] != "$(params."+p.Name+")" && !secretNames["$(params."+p.Name+")"] {
					t.Errorf("param %s is not passed as env %s=$(params.%s)", p.Name, p.Name, p.Name)
				}
				if p.Default == nil && !required[p.Name] && !(name == "wait-build" && p.Name == "IMAGE") {
					t.Errorf("param %s has no default", p.Name)
				}
				if p.Description == "" {
					t.Errorf("param %s has no description", p.Name)
				}
			}
			// Each variable the Config reads is set, and nothing else is.
			read := envNames(reflect.TypeOf(cfg))
			for _, n := range read {
				if _, ok := env[n]; !ok {
					t.Errorf("the step reads %s but the Task does not set it", n)
				}
			}
			for n := range env {
				if !slices.Contains(read, n) && !libraryEnv[n] {
					t.Errorf("the Task sets %s but the step does not read it", n)
				}
			}
			if env["RESULTS_DIR"] != "/tekton/results" {
				t.Errorf("RESULTS_DIR=%q", env["RESULTS_DIR"])
			}

			// OpenShift restricted-v2: no fixed UID, non-root, no escalation, no capabilities, RuntimeDefault seccomp.
			sc := s.SecurityContext
			if sc == nil || sc.RunAsUser != nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
				!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
				t.Errorf("securityContext %+v does not fit restricted-v2", sc)
			}

			// Catalog metadata (tektoncd/catalog, catlin).
			if !regexp.MustCompile(`^[0-9]+\.[0-9]+$`).MatchString(task.Labels["app.kubernetes.io/version"]) {
				t.Errorf("label app.kubernetes.io/version %q", task.Labels["app.kubernetes.io/version"])
			}
			for _, a := range []string{"tekton.dev/pipelines.minVersion", "tekton.dev/categories", "tekton.dev/tags", "tekton.dev/displayName", "tekton.dev/platforms"} {
				if task.Annotations[a] == "" {
					t.Errorf("annotation %s missing", a)
				}
			}
			// The Hub and the console offer a Task on the platforms it names: those the step image index holds.
			if got, want := task.Annotations["tekton.dev/platforms"], strings.Join(image.Platforms, ","); got != want {
				t.Errorf("tekton.dev/platforms %q; the step image index holds %s", got, want)
			}
			for _, c := range strings.Split(task.Annotations["tekton.dev/categories"], ",") {
				if !slices.Contains(hubCategories, strings.TrimSpace(c)) {
					t.Errorf("category %q is not in the Hub's list", c)
				}
			}
			desc := task.Spec.Description
			if first, _, _ := strings.Cut(desc, "\n"); len(first) == 0 || len(first) > 120 {
				t.Errorf("description's first line %q: want a one-line summary", first)
			}
			for _, c := range []string{"Exit codes:", "0 ", "1 error", "2 bad input"} {
				if !strings.Contains(desc, c) {
					t.Errorf("description does not document the exit codes (%q)", c)
				}
			}
			// Results stay few and small (Tekton's termination message is 4 KB for all of them).
			if len(task.Spec.Results) == 0 || len(task.Spec.Results) > 6 {
				t.Errorf("%d results", len(task.Spec.Results))
			}
		})
	}
}

// TestTektonValidationBites keeps the check above honest: the same validation rejects a Task that uses a param it
// does not declare.
func TestTektonValidationBites(t *testing.T) {
	t.Parallel()
	task := loadTask(t, "start-build")
	task.Spec.Steps[0].Env[0].Value = "$(params.NOT_DECLARED)"
	if err := task.Validate(context.Background()); err == nil || !strings.Contains(err.Error(), "NOT_DECLARED") {
		t.Errorf("validation of a Task using an undeclared param: %v; want an error naming it", err)
	}
}
