// Package pipelines checks pipelines/ against its generator, Tekton's own validation, and the Tasks it uses.
package pipelines

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"sigs.k8s.io/yaml"

	"github.com/canaryline/canaryline/internal/tools/catalog"
	"github.com/canaryline/canaryline/internal/tools/pipelinegen"
)

const root = "../.."

func loadTasks(t *testing.T) map[string]*v1.Task {
	t.Helper()
	tasks := map[string]*v1.Task{}
	files, _ := filepath.Glob(filepath.Join(root, "tasks", "*.yaml"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if !bytes.Contains(data, []byte("kind: Task\n")) {
			continue
		}
		task := &v1.Task{}
		if err := yaml.UnmarshalStrict(data, task); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		tasks[task.Name] = task
	}
	return tasks
}

// TestGeneratedPipelinesAreFresh fails when pipelines/ differs from what `make pipelines` writes.
func TestGeneratedPipelinesAreFresh(t *testing.T) {
	t.Parallel()
	files, err := pipelinegen.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, "pipelines", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("pipelines/%s is stale or missing: run make pipelines", name)
		}
	}
	onDisk, _ := filepath.Glob(filepath.Join(root, "pipelines", "*.yaml"))
	for _, f := range onDisk {
		if _, ok := files[filepath.Base(f)]; !ok {
			t.Errorf("%s is not generated: add it to internal/tools/pipelinegen or remove it", f)
		}
	}
	if len(files) != 8 {
		t.Errorf("%d pipelines; want 8 (canary 1/3/5, canary prebuilt, canary with an ApprovalTask or canaryline approve, blue-green, blue-green prebuilt)", len(files))
	}
}

var (
	paramRef  = regexp.MustCompile(`\$\(params\.([a-zA-Z0-9_-]+)\)`)
	resultRef = regexp.MustCompile(`\$\(tasks\.([a-z0-9-]+)\.results\.([A-Za-z0-9_-]+)\)`)
)

func TestPipelines(t *testing.T) {
	t.Parallel()
	tasks := loadTasks(t)
	if len(tasks) != 5 {
		t.Fatalf("%d Tasks; want the five steps", len(tasks))
	}
	for _, name := range pipelinegen.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(root, "pipelines", name))
			if err != nil {
				t.Fatal(err)
			}
			p := &v1.Pipeline{}
			if err := yaml.UnmarshalStrict(data, p); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			p.SetDefaults(ctx)
			if err := p.Validate(ctx); err != nil {
				t.Fatalf("Tekton's validation: %v", err)
			}
			declared := map[string]bool{}
			for _, ps := range p.Spec.Params {
				declared[ps.Name] = true
				if ps.Default == nil {
					t.Errorf("param %s has no default (the console needs one)", ps.Name)
				}
			}
			byName := map[string]v1.PipelineTask{}
			for _, pt := range append(append([]v1.PipelineTask{}, p.Spec.Tasks...), p.Spec.Finally...) {
				byName[pt.Name] = pt
			}
			promoteFinally := false
			for _, pt := range append(append([]v1.PipelineTask{}, p.Spec.Tasks...), p.Spec.Finally...) {
				if pt.TaskRef.Kind == "ApprovalTask" {
					checkApprovalTask(t, p, pt)
					continue
				}
				task, ok := tasks[pt.TaskRef.Name]
				if !ok {
					t.Fatalf("task %s uses Task %q, which tasks/ does not have", pt.Name, pt.TaskRef.Name)
				}
				taskParams := map[string]v1.ParamSpec{}
				for _, ps := range task.Spec.Params {
					taskParams[ps.Name] = ps
				}
				passed := map[string]bool{}
				for _, prm := range pt.Params {
					passed[prm.Name] = true
					if _, ok := taskParams[prm.Name]; !ok {
						t.Errorf("task %s passes %s, which Task %s does not declare", pt.Name, prm.Name, task.Name)
					}
					for _, m := range paramRef.FindAllStringSubmatch(prm.Value.StringVal, -1) {
						if !declared[m[1]] {
							t.Errorf("task %s uses $(params.%s), which the Pipeline does not declare", pt.Name, m[1])
						}
					}
					for _, m := range resultRef.FindAllStringSubmatch(prm.Value.StringVal, -1) {
						checkResult(t, pt.Name, m[1], m[2], byName, tasks)
					}
				}
				for name, ps := range taskParams {
					if ps.Default == nil && !passed[name] {
						t.Errorf("task %s does not pass %s, which Task %s requires", pt.Name, name, task.Name)
					}
				}
				if task.Name == "promote-or-rollback" && slices.ContainsFunc(p.Spec.Finally, func(f v1.PipelineTask) bool { return f.Name == pt.Name }) {
					promoteFinally = true
					for _, prm := range pt.Params {
						if resultRef.MatchString(prm.Value.StringVal) {
							t.Errorf("finally task %s uses a task result: it would be skipped when that task did not run", pt.Name)
						}
						if prm.Name == "DECISION" && prm.Value.StringVal != "auto" {
							t.Errorf("finally DECISION %q; want auto", prm.Value.StringVal)
						}
					}
				}
			}
			if !promoteFinally {
				t.Error("no finally task runs promote-or-rollback: a failure would leave the canary in place")
			}
			for _, r := range p.Spec.Results {
				for _, m := range resultRef.FindAllStringSubmatch(r.Value.StringVal, -1) {
					checkResult(t, "result "+r.Name, m[1], m[2], byName, tasks)
				}
			}
			if bytes.Contains(data, []byte("script:")) {
				t.Error("the Pipeline uses script:")
			}
			// The weight steps run in order, each followed by an analysis.
			var order []string
			for _, pt := range p.Spec.Tasks {
				name := pt.TaskRef.Name
				if name == "" {
					name = string(pt.TaskRef.Kind) // a custom task
				}
				order = append(order, name)
			}
			seq := strings.Join(order, ",")
			seq = strings.Replace(seq, "verify-health,ApprovalTask,", "verify-health,", 1) // the gate before promotion
			if !strings.Contains(seq, "shift-canary,verify-health") || !strings.HasSuffix(seq, "verify-health,promote-or-rollback") {
				t.Errorf("task order %s", seq)
			}
		})
	}
}

func checkResult(t *testing.T, user, from, result string, byName map[string]v1.PipelineTask, tasks map[string]*v1.Task) {
	t.Helper()
	pt, ok := byName[from]
	if !ok {
		t.Errorf("%s uses results of %s, which is not a task of the Pipeline", user, from)
		return
	}
	for _, r := range tasks[pt.TaskRef.Name].Spec.Results {
		if r.Name == result {
			return
		}
	}
	t.Errorf("%s uses result %s of %s; Task %s has no such result", user, result, from, pt.TaskRef.Name)
}

// TestNoScriptAnywhere: params reach binaries through env, never through script.
func TestNoScriptAnywhere(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"tasks", "pipelines", "triggers", ".tekton", "catalog"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
				return nil
			}
			data, _ := os.ReadFile(p)
			if regexp.MustCompile(`(?m)^\s*(- )?script:`).Match(data) {
				t.Errorf("%s uses script:", p)
			}
			return nil
		})
	}
}

// TestKustomization: `oc apply -k .` installs every Task, Pipeline and the RBAC, and nothing that does not exist:
// the root kustomization.yaml includes tasks/ and pipelines/, whose Kustomization files list every manifest there.
func TestKustomization(t *testing.T) {
	t.Parallel()
	resources := func(file string) []string {
		var k struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Resources  []string `json:"resources"`
		}
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, &k); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return k.Resources
	}
	if got := resources("kustomization.yaml"); !slices.Equal(got, []string{"tasks", "pipelines"}) {
		t.Errorf("kustomization.yaml installs %v; want tasks and pipelines", got)
	}
	for _, dir := range []string{"tasks", "pipelines"} {
		listed := resources(filepath.Join(dir, "Kustomization"))
		for _, r := range listed {
			if _, err := os.Stat(filepath.Join(root, dir, r)); err != nil {
				t.Errorf("%s/Kustomization: resource %s: %v", dir, r, err)
			}
		}
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		for _, f := range files {
			if !slices.Contains(listed, filepath.Base(f)) {
				t.Errorf("%s/Kustomization does not install %s", dir, filepath.Base(f))
			}
		}
	}
}

// TestCatalogIsFresh fails when catalog/ differs from what `make catalog` writes from tasks/, pipelines/ and the
// step image digest in catalog/IMAGE_DIGEST.
func TestCatalogIsFresh(t *testing.T) {
	t.Parallel()
	files, err := catalog.Generate(catalog.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := catalog.Diff(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("catalog/ is stale (run make catalog): %v", stale)
	}
	task, ok := files["catalog/task/shift-canary/0.1/shift-canary.yaml"]
	if !ok || !bytes.Contains(task, []byte("canaryline-steps:v0.1.0@sha256:")) {
		t.Errorf("the catalog's shift-canary Task is missing or its step image is not pinned")
	}
}

// goModToolchain is the toolchain go.mod's go line names, such as go1.26.8.
func goModToolchain(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go line with a full version (go 1.N.M)")
	}
	return "go" + string(m[1])
}

// TestBlueGreenOffersNoBaseline: a blue-green switch gives the new version 100%, where a baseline (which takes the
// canary's share again) cannot fit, so blue-green Pipelines have no baseline param to accept and then refuse.
func TestBlueGreenOffersNoBaseline(t *testing.T) {
	t.Parallel()
	for _, v := range pipelinegen.Variants {
		p := v.Pipeline()
		has := false
		for _, ps := range p.Spec.Params {
			has = has || strings.HasPrefix(ps.Name, "baseline")
		}
		for _, pt := range p.Spec.Tasks {
			for _, prm := range pt.Params {
				has = has || (pt.TaskRef.Name == "shift-canary" && strings.HasPrefix(prm.Name, "BASELINE"))
			}
		}
		if v.BlueGreen && has {
			t.Errorf("%s: offers a baseline, which its switch to 100%% always refuses", v.Name)
		}
		if !v.BlueGreen && !has {
			t.Errorf("%s: no baseline param", v.Name)
		}
	}
}

// TestDisplayNamesSayWhatEachTaskDoes: every Pipeline and every PipelineTask (finally too) has a displayName, the
// name the OpenShift console and the Tekton Dashboard show; the params it uses are declared, and with the defaults
// substituted as Tekton does, the canary's weight steps read "Shift 10% of traffic to the canary".
func TestDisplayNamesSayWhatEachTaskDoes(t *testing.T) {
	t.Parallel()
	for _, v := range pipelinegen.Variants {
		p := v.Pipeline()
		if p.Spec.DisplayName == "" || p.Spec.DisplayName != p.Annotations["tekton.dev/displayName"] {
			t.Errorf("%s: spec.displayName %q; want the catalog's display name %q", v.Name, p.Spec.DisplayName, p.Annotations["tekton.dev/displayName"])
		}
		defaults := map[string]string{}
		for _, ps := range p.Spec.Params {
			defaults[ps.Name] = ps.Default.StringVal
		}
		shown := map[string]string{}
		seen := map[string]string{}
		for _, pt := range append(append([]v1.PipelineTask{}, p.Spec.Tasks...), p.Spec.Finally...) {
			if pt.DisplayName == "" || pt.DisplayName == pt.Name {
				t.Errorf("%s: task %s has displayName %q; want words saying what it does", v.Name, pt.Name, pt.DisplayName)
			}
			shown[pt.Name] = paramRef.ReplaceAllStringFunc(pt.DisplayName, func(ref string) string {
				name := paramRef.FindStringSubmatch(ref)[1]
				if _, ok := defaults[name]; !ok {
					t.Errorf("%s: task %s's displayName uses $(params.%s), which the Pipeline does not declare", v.Name, pt.Name, name)
				}
				return defaults[name]
			})
			if other, dup := seen[shown[pt.Name]]; dup {
				t.Errorf("%s: tasks %s and %s both show %q", v.Name, other, pt.Name, shown[pt.Name])
			}
			seen[shown[pt.Name]] = pt.Name
		}
		for i, w := range v.Weights {
			if got, want := shown[fmt.Sprintf("shift-%d", i+1)], "Shift "+w+"% of traffic to the canary"; got != want {
				t.Errorf("%s: shift-%d shows %q; want %q", v.Name, i+1, got, want)
			}
			want := "Analyse the canary at " + w + "%"
			if v.Approval == pipelinegen.ApprovalCLI && i == len(v.Weights)-1 {
				want += ", then wait for approval"
			}
			if got := shown[fmt.Sprintf("verify-%d", i+1)]; got != want {
				t.Errorf("%s: verify-%d shows %q; want %q", v.Name, i+1, got, want)
			}
		}
	}
}

// checkApprovalTask checks the gate of canary-release-approval against OpenShift Pipelines' manual approval gate
// (openshift-pipelines.org/v1alpha1 ApprovalTask, run as a Tekton custom task): its params approvers (an array of
// users and group:NAME), numberOfApprovalsRequired and description, and nothing else; a timeout, after which the
// CustomRun fails and finally rolls the release back; and promote runs after it. The manual-approval-gate module is
// not served by the Go module proxy, so these are its documented params rather than its Go types.
func checkApprovalTask(t *testing.T, p *v1.Pipeline, pt v1.PipelineTask) {
	t.Helper()
	if pt.TaskRef.APIVersion != "openshift-pipelines.org/v1alpha1" || pt.TaskRef.Name != "" {
		t.Errorf("task %s: taskRef %+v; want apiVersion openshift-pipelines.org/v1alpha1, kind ApprovalTask, no name", pt.Name, pt.TaskRef)
	}
	want := map[string]string{"approvers": "$(params.approvers[*])", "numberOfApprovalsRequired": "$(params.approvals-required)", "description": ""}
	for _, prm := range pt.Params {
		w, ok := want[prm.Name]
		if !ok || (w != "" && prm.Value.StringVal != w) {
			t.Errorf("task %s passes %s=%q; the ApprovalTask takes %v", pt.Name, prm.Name, prm.Value.StringVal, want)
		}
		delete(want, prm.Name)
	}
	if len(want) > 0 {
		t.Errorf("task %s does not pass %v", pt.Name, want)
	}
	for _, ps := range p.Spec.Params {
		if ps.Name == "approvers" && (ps.Type != v1.ParamTypeArray || len(ps.Default.ArrayVal) == 0) {
			t.Errorf("param approvers: %s with default %v; want an array with a default", ps.Type, ps.Default)
		}
	}
	if pt.Timeout == nil || pt.Timeout.Duration <= 0 {
		t.Errorf("task %s has no timeout: an unanswered approval would hold the release until the PipelineRun's", pt.Name)
	}
	for _, next := range p.Spec.Tasks {
		if next.Name == "promote" && !slices.Equal(next.RunAfter, []string{pt.Name}) {
			t.Errorf("promote runs after %v; want after %s", next.RunAfter, pt.Name)
		}
	}
}
