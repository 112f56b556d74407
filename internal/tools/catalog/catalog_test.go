package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"sigs.k8s.io/yaml"
)

func TestGenerateLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := tc.root(t)
			tasks, pipelines := sourceNames(t, root)
			if tc.name == "real" {
				for _, want := range []string{"start-build", "wait-build", "shift-canary", "verify-health", "promote-or-rollback"} {
					if !slices.Contains(tasks, want) {
						t.Errorf("the real tasks/ has no Task %s", want)
					}
				}
			}
			want := []string{"catalog/README.md", "catalog/artifacthub-repo.yml"}
			for kind, names := range map[string][]string{"task": tasks, "pipeline": pipelines} {
				for _, n := range names {
					dir := path.Join("catalog", kind, n, "0.1")
					want = append(want, path.Join(dir, n+".yaml"), path.Join(dir, "README.md"), path.Join(dir, "samples", n+"-run.yaml"))
				}
			}
			sort.Strings(want)
			files := generate(t, root)
			if diff := cmp.Diff(want, sortedKeys(files)); diff != "" {
				t.Errorf("generated paths (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGeneratedResourcesAreValidTekton(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := generate(t, tc.root(t))
			tasks := map[string]*v1.Task{}
			pipelines := map[string]*v1.Pipeline{}
			for p, b := range files {
				parts := strings.Split(p, "/")
				if len(parts) != 5 || parts[4] != parts[2]+".yaml" {
					continue
				}
				switch parts[1] {
				case "task":
					var task v1.Task
					if err := yaml.UnmarshalStrict(b, &task); err != nil {
						t.Fatalf("%s: %v", p, err)
					}
					task.SetDefaults(ctx)
					if err := task.Validate(ctx); err != nil {
						t.Errorf("%s: %v", p, err)
					}
					if task.Name != parts[2] || task.Labels[versionKey] != parts[3] {
						t.Errorf("%s: name %q version %q do not match the path", p, task.Name, task.Labels[versionKey])
					}
					tasks[task.Name] = &task
				case "pipeline":
					var pl v1.Pipeline
					if err := yaml.UnmarshalStrict(b, &pl); err != nil {
						t.Fatalf("%s: %v", p, err)
					}
					pl.SetDefaults(ctx)
					if err := pl.Validate(ctx); err != nil {
						t.Errorf("%s: %v", p, err)
					}
					if pl.Name != parts[2] || pl.Labels[versionKey] != parts[3] {
						t.Errorf("%s: name %q version %q do not match the path", p, pl.Name, pl.Labels[versionKey])
					}
					pipelines[pl.Name] = &pl
				}
			}
			if len(tasks) == 0 {
				t.Fatal("no Tasks generated")
			}
			// The samples are valid runs of their resource: every param without a default is given, and every
			// workspace that is not optional is bound.
			for name, task := range tasks {
				p := path.Join("catalog/task", name, "0.1/samples", name+"-run.yaml")
				var tr v1.TaskRun
				if err := yaml.UnmarshalStrict(files[p], &tr); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				tr.Name = tr.GenerateName + "x" // as the API server does
				tr.SetDefaults(ctx)
				if err := tr.Validate(ctx); err != nil {
					t.Errorf("%s: %v", p, err)
				}
				if tr.Spec.TaskRef == nil || tr.Spec.TaskRef.Name != name {
					t.Errorf("%s: taskRef %+v, want name %s", p, tr.Spec.TaskRef, name)
				}
				checkRunParams(t, p, task.Spec.Params, tr.Spec.Params)
				for _, w := range task.Spec.Workspaces {
					if !w.Optional && !slices.ContainsFunc(tr.Spec.Workspaces, func(b v1.WorkspaceBinding) bool { return b.Name == w.Name }) {
						t.Errorf("%s: workspace %s is not bound", p, w.Name)
					}
				}
			}
			for name, pl := range pipelines {
				p := path.Join("catalog/pipeline", name, "0.1/samples", name+"-run.yaml")
				var pr v1.PipelineRun
				if err := yaml.UnmarshalStrict(files[p], &pr); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				pr.Name = pr.GenerateName + "x"
				pr.SetDefaults(ctx)
				if err := pr.Validate(ctx); err != nil {
					t.Errorf("%s: %v", p, err)
				}
				if pr.Spec.PipelineRef == nil || pr.Spec.PipelineRef.Name != name {
					t.Errorf("%s: pipelineRef %+v, want name %s", p, pr.Spec.PipelineRef, name)
				}
				checkRunParams(t, p, pl.Spec.Params, pr.Spec.Params)
				for _, w := range pl.Spec.Workspaces {
					if !w.Optional && !slices.ContainsFunc(pr.Spec.Workspaces, func(b v1.WorkspaceBinding) bool { return b.Name == w.Name }) {
						t.Errorf("%s: workspace %s is not bound", p, w.Name)
					}
				}
				// Every Task the Pipeline runs by name is in the catalog.
				for _, pt := range append(slices.Clone(pl.Spec.Tasks), pl.Spec.Finally...) {
					if pt.TaskRef != nil && pt.TaskRef.Resolver == "" && pt.TaskRef.APIVersion == "" && tasks[pt.TaskRef.Name] == nil {
						t.Errorf("%s: task %s runs %s, which is not in the catalog", name, pt.Name, pt.TaskRef.Name)
					}
				}
			}
		})
	}
}

func checkRunParams(t *testing.T, file string, specs v1.ParamSpecs, params v1.Params) {
	t.Helper()
	for _, s := range specs {
		i := slices.IndexFunc(params, func(p v1.Param) bool { return p.Name == s.Name })
		if s.Default == nil && i < 0 {
			t.Errorf("%s: param %s has no default and no value", file, s.Name)
		}
		if i >= 0 && params[i].Value.Type != s.Type {
			t.Errorf("%s: param %s is %s, want %s", file, s.Name, params[i].Value.Type, s.Type)
		}
	}
	for _, p := range params {
		if !slices.ContainsFunc(specs, func(s v1.ParamSpec) bool { return s.Name == p.Name }) {
			t.Errorf("%s: param %s is not declared", file, p.Name)
		}
	}
}

func TestStepImagesArePinned(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := generate(t, tc.root(t))
			n := 0
			for p, b := range files {
				if !strings.HasSuffix(p, ".yaml") || strings.Contains(p, "/samples/") {
					continue
				}
				for _, line := range strings.Split(string(b), "\n") {
					_, img, ok := strings.Cut(line, "image: ")
					if !ok {
						continue
					}
					img = strings.TrimSpace(strings.Split(img, " #")[0])
					n++
					if strings.HasPrefix(img, StepImage+":") {
						if !strings.HasSuffix(img, "@"+testDigest) || !strings.HasPrefix(img, StepImage+":v") {
							t.Errorf("%s: step image %s is not %s:vX@%s", p, img, StepImage, testDigest)
						}
						continue
					}
					if img != busybox {
						t.Errorf("%s: unexpected image %s", p, img)
					}
				}
			}
			if n == 0 {
				t.Fatal("no images in the generated resources")
			}
		})
	}
}

func TestPinnedImage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		image, want, err string
	}{
		{image: StepImage + ":v0.1.0", want: StepImage + ":v0.1.0@" + testDigest},
		{image: StepImage + ":v0.1.0@" + testDigest, want: StepImage + ":v0.1.0@" + testDigest},
		{image: busybox, want: busybox},
		{image: "quay.io/org/img@" + otherDigest, want: "quay.io/org/img@" + otherDigest},
		{image: "registry.example.com:5000/org/img:1.0@" + otherDigest, want: "registry.example.com:5000/org/img:1.0@" + otherDigest},
		{image: StepImage + ":v0.1.0@" + otherDigest, err: "pinned to " + otherDigest},
		{image: StepImage, err: "no version tag"},
		{image: StepImage + ":latest", err: ":latest"},
		{image: "canaryline-steps:v0.1.0", err: "not fully qualified"},
		{image: "canaryline/canaryline-steps:v0.1.0", err: "not fully qualified"},
		{image: "docker.io/library/busybox:1.36", err: "not pinned by digest"},
		{image: "docker.io/library/busybox", err: "no tag or digest"},
		{image: "docker.io/library/busybox@sha256:abc", err: "not a sha256 digest"},
		{image: "$(params.IMAGE)", err: "is a parameter"},
	} {
		t.Run(tc.image, func(t *testing.T) {
			t.Parallel()
			got, err := pinnedImage(tc.image, testDigest)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("pinnedImage(%q) = %q, %v; want an error with %q", tc.image, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("pinnedImage(%q) = %q, %v; want %q", tc.image, got, err, tc.want)
			}
		})
	}
}

func TestArtifactHubAnnotations(t *testing.T) {
	t.Parallel()
	type link struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	type change struct {
		Kind        string `json:"kind"`
		Description string `json:"description"`
	}
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := tc.root(t)
			tasks, _ := sourceNames(t, root)
			files := generate(t, root)
			for p, b := range files {
				parts := strings.Split(p, "/")
				if len(parts) != 5 || parts[4] != parts[2]+".yaml" {
					continue
				}
				kind, name := parts[1], parts[2]
				var obj struct {
					Metadata struct {
						Annotations map[string]string `json:"annotations"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal(b, &obj); err != nil {
					t.Fatal(err)
				}
				a := obj.Metadata.Annotations
				if a["artifacthub.io/license"] != "Apache-2.0" || a["artifacthub.io/provider"] != "canaryline" {
					t.Errorf("%s: license %q provider %q", p, a["artifacthub.io/license"], a["artifacthub.io/provider"])
				}
				var links, maintainers, recs []link
				var changes []change
				for key, v := range map[string]any{
					"artifacthub.io/links": &links, "artifacthub.io/maintainers": &maintainers,
					"artifacthub.io/recommendations": &recs, "artifacthub.io/changes": &changes,
				} {
					if err := yaml.UnmarshalStrict([]byte(a[key]), v); err != nil {
						t.Errorf("%s: %s is not a YAML list: %v\n%s", p, key, err, a[key])
					}
				}
				if want := []link{{Name: "source", URL: "https://github.com/canaryline/canaryline"}}; !reflect.DeepEqual(links, want) {
					t.Errorf("%s: links %+v, want %+v", p, links, want)
				}
				if want := []link{{Name: "canaryline"}}; !reflect.DeepEqual(maintainers, want) {
					t.Errorf("%s: maintainers %+v, want %+v", p, maintainers, want)
				}
				if want := []change{{Kind: "added", Description: "first release"}}; !reflect.DeepEqual(changes, want) {
					t.Errorf("%s: changes %+v, want %+v", p, changes, want)
				}
				var got []string
				for _, r := range recs {
					got = append(got, strings.TrimPrefix(r.URL, "https://artifacthub.io/packages/tekton-task/canaryline/"))
				}
				if kind == "task" {
					var want []string
					for _, t := range tasks {
						if t != name {
							want = append(want, t)
						}
					}
					sort.Strings(want)
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s: recommendations %v, want the other Tasks %v", p, got, want)
					}
				} else {
					for _, g := range got {
						if !slices.Contains(tasks, g) {
							t.Errorf("%s: recommends %s, which is not a catalog Task", p, g)
						}
					}
					if len(got) == 0 {
						t.Errorf("%s: no recommendations", p)
					}
				}
			}
			if want := "owners:\n  - name: canaryline\n"; !strings.HasSuffix(string(files["catalog/artifacthub-repo.yml"]), want) {
				t.Errorf("artifacthub-repo.yml:\n%s\nwant it to end with\n%s", files["catalog/artifacthub-repo.yml"], want)
			}
		})
	}
}

// The generated resource is the source, plus the Artifact Hub annotations and with the step image pinned: nothing
// else changes.
func TestGeneratedResourceIsTheSource(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := tc.root(t)
			files := generate(t, root)
			src, err := load(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range src.resources {
				var want, got map[string]any
				b, err := encode(r.doc)
				if err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(b, &want); err != nil {
					t.Fatal(err)
				}
				pinStepImages(want)
				gen := files[path.Join("catalog", strings.ToLower(r.kind), r.name, "0.1", r.name+".yaml")]
				if err := yaml.Unmarshal(gen, &got); err != nil {
					t.Fatal(err)
				}
				ann := got["metadata"].(map[string]any)["annotations"].(map[string]any)
				for k := range ann {
					if strings.HasPrefix(k, "artifacthub.io/") {
						delete(ann, k)
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: generated resource differs from the source beyond annotations and images (-source +generated):\n%s", r, diff)
				}
			}
			if tc.name == "fixture" {
				b := string(files["catalog/task/alpha/0.1/alpha.yaml"])
				for _, want := range []string{
					"# Generated by `canaryline catalog generate` from tasks/alpha.yaml.",
					"image: " + StepImage + ":v0.1.0@" + testDigest + " # pinned by the generator",
					"  description: >-\n",
				} {
					if !strings.Contains(b, want) {
						t.Errorf("alpha.yaml has no %q:\n%s", want, b)
					}
				}
				if strings.Contains(b, "# alpha: the fixture's first Task.") {
					t.Errorf("alpha.yaml keeps the source's header comment:\n%s", b)
				}
			}
		})
	}
}

// pinStepImages pins, in a decoded resource, every string that is the step image by tag.
func pinStepImages(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "image" && strings.HasPrefix(s, StepImage+":v") && !strings.Contains(s, "@") {
				v[k] = s + "@" + testDigest
				continue
			}
			pinStepImages(x)
		}
	case []any:
		for _, x := range v {
			pinStepImages(x)
		}
	}
}

func TestSourcesUntouched(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := tc.root(t)
			before := map[string]map[string]string{}
			for _, dir := range []string{"tasks", "pipelines"} {
				before[dir] = hashTree(t, filepath.Join(root, dir))
			}
			files := generate(t, root)
			if err := Write(root, files); err != nil {
				t.Fatal(err)
			}
			if _, err := Generate(Options{Root: root, ImageDigest: testDigest}); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []string{"tasks", "pipelines"} {
				if diff := cmp.Diff(before[dir], hashTree(t, filepath.Join(root, dir))); diff != "" {
					t.Errorf("%s/ changed (-before +after):\n%s", dir, diff)
				}
			}
			for _, dir := range []string{"tasks", "pipelines"} {
				matches, _ := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
				for _, m := range matches {
					b, _ := os.ReadFile(m)
					if strings.Contains(string(b), "artifacthub.io/") && tc.name == "fixture" {
						t.Errorf("%s has Artifact Hub annotations", m)
					}
				}
			}
		})
	}
	// The real repository's sources are only read: generate from them in place (writing nothing).
	t.Run("real in place", func(t *testing.T) {
		t.Parallel()
		root := repoRoot(t)
		before := hashTree(t, filepath.Join(root, "tasks"))
		if _, err := Generate(Options{Root: root, ImageDigest: testDigest}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(before, hashTree(t, filepath.Join(root, "tasks"))); diff != "" {
			t.Errorf("tasks/ changed (-before +after):\n%s", diff)
		}
	})
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := tc.root(t), tc.root(t) // two copies: the root's path must not leak into the output
			first, second := generate(t, a), generate(t, a)
			if !reflect.DeepEqual(first, second) {
				t.Error("two Generate calls on the same root differ")
			}
			if other := generate(t, b); !reflect.DeepEqual(first, other) {
				t.Error("Generate on two copies of the sources differs")
			}
		})
	}
}

func TestREADME(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := generate(t, tc.root(t))
			index := string(files["catalog/README.md"])
			for p, b := range files {
				parts := strings.Split(p, "/")
				if len(parts) != 5 || parts[4] != parts[2]+".yaml" {
					continue
				}
				readme := string(files[path.Join(path.Dir(p), "README.md")])
				sample := string(files[path.Join(path.Dir(p), "samples", parts[2]+"-run.yaml")])
				var obj struct {
					Spec struct {
						Params     v1.ParamSpecs `json:"params"`
						Results    []struct{ Name string }
						Workspaces []struct{ Name string }
						Desc       string `json:"description"`
					} `json:"spec"`
				}
				if err := yaml.Unmarshal(b, &obj); err != nil {
					t.Fatal(err)
				}
				spec := obj.Spec
				summary, _, _ := strings.Cut(spec.Desc, "\n")
				want := []string{"# " + parts[2] + "\n", text(summary), "## Usage", "```yaml\n" + sample + "```", "kubectl create -f " + path.Join(path.Dir(p), "samples", parts[2]+"-run.yaml")}
				if len(spec.Params) > 0 {
					want = append(want, "## Parameters")
				}
				for _, par := range spec.Params {
					want = append(want, "| `"+par.Name+"` |")
				}
				for _, r := range spec.Results {
					want = append(want, "| `"+r.Name+"` |")
				}
				for _, w := range spec.Workspaces {
					want = append(want, "| `"+w.Name+"` |")
				}
				for _, w := range want {
					if !strings.Contains(readme, w) {
						t.Errorf("%s/README.md has no %q", path.Dir(p), w)
					}
				}
				if link := fmt.Sprintf("(%s/%s/%s/README.md)", parts[1], parts[2], parts[3]); !strings.Contains(index, link) {
					t.Errorf("catalog/README.md does not link %s", link)
				}
			}
			if tc.name != "fixture" {
				return
			}
			alpha := string(files["catalog/task/alpha/0.1/README.md"])
			for _, want := range []string{
				"Alpha shifts something somewhere.\n\nIt shifts it carefully and reports the share.\n\n",
				"| `APP` | string | *required* | Name of the application, \"Name &lt;email&gt;\" style \\| piped. |",
				"| `MODE` | string | `fast` | fast or slow. |",
				"| `EXTRA` | array | `[\"a\",\"b\"]` | Extra arguments. |",
				"| `data` | no | Where the data goes. |",
				"| `cache` | yes | An optional cache. |",
				"| `SHARE` | string | The share, in percent. |",
				"## Exit codes\n\n| Code | Meaning |\n| --- | --- |\n| 0 | done |\n| 1 | error (the API failed; run it again) |\n| 2 | bad input |\n",
				"| Image | `" + StepImage + ":v0.1.0@" + testDigest + "` |",
			} {
				if !strings.Contains(alpha, want) {
					t.Errorf("alpha README has no %q:\n%s", want, alpha)
				}
			}
			if strings.Contains(alpha, "Exit codes:") {
				t.Errorf("alpha README keeps the exit codes sentence in the description:\n%s", alpha)
			}
			demo := string(files["catalog/pipeline/demo/0.1/README.md"])
			for _, want := range []string{
				"kubectl apply -f catalog/task/alpha/0.1/alpha.yaml\nkubectl apply -f catalog/task/beta/0.1/beta.yaml\nkubectl apply -f catalog/pipeline/demo/0.1/demo.yaml\n",
				"| `check` | [beta](../../../task/beta/0.1/README.md) | shift |",
				"## Finally",
				"| `inline` | an embedded taskSpec |  |",
			} {
				if !strings.Contains(demo, want) {
					t.Errorf("demo README has no %q:\n%s", want, demo)
				}
			}
			if !strings.Contains(string(files["catalog/pipeline/demo/0.1/samples/demo-run.yaml"]), "- name: app\n      value: my-app\n") {
				t.Errorf("demo sample does not set app:\n%s", files["catalog/pipeline/demo/0.1/samples/demo-run.yaml"])
			}
		})
	}
}

func TestParseExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []exitCode
	}{
		{"0 ok; 1 error.", []exitCode{{"0", "ok"}, {"1", "error"}}},
		{"0 done (or nothing to do); 1 error (the API failed, or it timed out; run it again); 5 locked.",
			[]exitCode{{"0", "done (or nothing to do)"}, {"1", "error (the API failed, or it timed out; run it again)"}, {"5", "locked"}}},
		{"see the logs", nil},
	} {
		if got := parseExitCodes(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseExitCodes(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDigest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		option string
		file   string // catalog/IMAGE_DIGEST; "" absent
		want   string
		err    string
		noDig  bool
	}{
		{name: "option", option: testDigest, want: testDigest},
		{name: "option over file", option: testDigest, file: otherDigest + "\n", want: testDigest},
		{name: "file", file: otherDigest + "\n", want: otherDigest},
		{name: "file with comment and ref", file: "# written by make image\n" + StepImage + "@" + otherDigest + "\n", want: otherDigest},
		{name: "none", err: "pin the step image: run make image, or give --image-digest", noDig: true},
		{name: "empty file", file: "\n", err: "pin the step image", noDig: true},
		{name: "bad option", option: "sha256:abc", err: "want sha256: and 64"},
		{name: "bad file", file: "latest\n", err: "is not a digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fixtureRoot(t, nil)
			if tc.file != "" {
				writeTestFile(t, filepath.Join(root, "catalog", DigestFile), tc.file)
			}
			files, err := Generate(Options{Root: root, ImageDigest: tc.option})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Generate: %v; want an error with %q", err, tc.err)
				}
				if tc.noDig != errors.Is(err, ErrNoDigest) {
					t.Errorf("errors.Is(%v, ErrNoDigest) = %v", err, !tc.noDig)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := files["catalog/"+DigestFile]; ok {
				t.Error("IMAGE_DIGEST is generated")
			}
			if !strings.Contains(string(files["catalog/task/beta/0.1/beta.yaml"]), StepImage+":v0.1.0@"+tc.want+"\n") {
				t.Errorf("beta.yaml is not pinned to %s:\n%s", tc.want, files["catalog/task/beta/0.1/beta.yaml"])
			}
		})
	}
}

func TestValidation(t *testing.T) {
	t.Parallel()
	alpha := fixtureFiles["tasks/alpha.yaml"]
	edit := func(old, new string) map[string]string {
		if !strings.Contains(alpha, old) {
			panic("fixture has no " + old)
		}
		return map[string]string{"tasks/alpha.yaml": strings.Replace(alpha, old, new, 1)}
	}
	for _, tc := range []struct {
		name      string
		overrides map[string]string
		version   string
		err       string
	}{
		{name: "version label not X.Y", overrides: edit(`version: "0.1"`, `version: "v0.1.0"`), err: `tasks/alpha.yaml: Task alpha: label app.kubernetes.io/version is "v0.1.0": want MAJOR.MINOR`},
		{name: "version label missing", overrides: edit(`app.kubernetes.io/version: "0.1"`, `app.kubernetes.io/name: x`), err: "label app.kubernetes.io/version is missing"},
		{name: "version option differs", version: "0.2", err: `label app.kubernetes.io/version is "0.1" but the catalog version is "0.2"`},
		{name: "version option not X.Y", version: "1", err: `catalog version "1": want MAJOR.MINOR`},
		{name: "annotation missing", overrides: edit(`    tekton.dev/categories: "Deployment, Openshift"`+"\n", ""), err: "annotation tekton.dev/categories is missing"},
		{name: "platforms missing", overrides: edit(`    tekton.dev/platforms: "linux/amd64,linux/arm64"`+"\n", ""), err: "annotation tekton.dev/platforms is missing"},
		{name: "category not in the Hub list", overrides: edit(`"Deployment, Openshift"`, `"Deployment, Canary"`), err: `category "Canary" (tekton.dev/categories) is not one of the Hub's`},
		{name: "minVersion", overrides: edit(`"0.56.0"`, `"latest"`), err: "tekton.dev/pipelines.minVersion is \"latest\""},
		{name: "description missing", overrides: map[string]string{"tasks/alpha.yaml": alpha[:strings.Index(alpha, "  description: >-")] + alpha[strings.Index(alpha, "  params:"):]}, err: "spec.description is missing"},
		{name: "latest image", overrides: edit("canaryline-steps:v0.1.0", "canaryline-steps:latest"), err: "spec.steps[shift]: image \"ghcr.io/canaryline/canaryline-steps:latest\" uses :latest"},
		{name: "unqualified image", overrides: edit("ghcr.io/canaryline/canaryline-steps:v0.1.0", "canaryline/canaryline-steps:v0.1.0"), err: "is not fully qualified"},
		{name: "unpinned other image", overrides: map[string]string{"tasks/beta.yaml": strings.Replace(fixtureFiles["tasks/beta.yaml"], busybox, "docker.io/library/busybox:1.36", 1)}, err: "tasks/beta.yaml (document 2): Task beta: spec.sidecars[helper]: image \"docker.io/library/busybox:1.36\" is not pinned by digest"},
		{name: "v1beta1", overrides: edit("apiVersion: tekton.dev/v1\n", "apiVersion: tekton.dev/v1beta1\n"), err: "the catalog ships tekton.dev/v1 only"},
		{name: "duplicate name", overrides: map[string]string{"tasks/alpha-copy.yaml": alpha}, err: "Task alpha is also defined in tasks/alpha-copy.yaml: names must be unique"},
		{name: "rejected by Tekton", overrides: edit("$(params.MODE)", "$(params.NOPE)"), err: "Tekton rejects the Task"},
		{name: "unknown field", overrides: edit("  results:", "  resultz:"), err: "not a valid tekton.dev/v1 Task"},
		{name: "bad YAML", overrides: map[string]string{"pipelines/demo.yaml": "a: [\n"}, err: "pipelines/demo.yaml:"},
		{name: "nothing to publish", overrides: map[string]string{"tasks/alpha.yaml": "", "tasks/beta.yaml": "", "pipelines/demo.yaml": ""}, err: "no Tekton Tasks or Pipelines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fixtureRoot(t, tc.overrides)
			files, err := Generate(Options{Root: root, ImageDigest: testDigest, Version: tc.version})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Generate: %v (%d files); want an error with %q", err, len(files), tc.err)
			}
		})
	}
}

func TestVersionOption(t *testing.T) {
	t.Parallel()
	files, err := Generate(Options{Root: fixtureRoot(t, nil), ImageDigest: testDigest, Version: "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["catalog/task/alpha/0.1/alpha.yaml"]; !ok {
		t.Errorf("no catalog/task/alpha/0.1/alpha.yaml in %v", sortedKeys(files))
	}
}

func TestNoPipelines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		overrides map[string]string
		mkdir     bool
	}{
		{name: "empty pipelines dir", overrides: map[string]string{"pipelines/demo.yaml": ""}, mkdir: true},
		{name: "no pipelines dir", overrides: map[string]string{"pipelines/demo.yaml": ""}},
		{name: "only a README", overrides: map[string]string{"pipelines/demo.yaml": "", "pipelines/README.md": "# pipelines\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fixtureRoot(t, tc.overrides)
			if tc.mkdir {
				if err := os.MkdirAll(filepath.Join(root, "pipelines"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			files := generate(t, root)
			for p := range files {
				if strings.HasPrefix(p, "catalog/pipeline/") {
					t.Errorf("unexpected %s", p)
				}
			}
			if !strings.Contains(string(files["catalog/README.md"]), "## Pipelines\n\nNone yet.\n") {
				t.Errorf("catalog/README.md:\n%s", files["catalog/README.md"])
			}
		})
	}
}
