package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

const (
	testDigest  = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	otherDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	busybox     = "docker.io/library/busybox:1.36@sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

// The fixture: two Tasks (one in a file with an RBAC Role before it) and a Pipeline that runs both.
var fixtureFiles = map[string]string{
	"tasks/README.md": "# tasks\n",
	"tasks/alpha.yaml": `# alpha: the fixture's first Task.
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: alpha
  labels:
    app.kubernetes.io/version: "0.1"
  annotations:
    tekton.dev/pipelines.minVersion: "0.56.0"
    tekton.dev/categories: "Deployment, Openshift"
    tekton.dev/tags: "canary, test"
    tekton.dev/displayName: "alpha: shift something"
    tekton.dev/platforms: "linux/amd64,linux/arm64"
spec:
  description: >-
    Alpha shifts something somewhere.


    It shifts it carefully and reports the share.
    Exit codes: 0 done; 1 error (the API failed; run it again); 2 bad input.
  params:
    - name: APP
      type: string
      description: Name of the application, "Name <email>" style | piped.
    - name: WEIGHT
      description: Percent of traffic.
    - name: MODE
      type: string
      default: fast
      description: fast or slow.
    - name: EXTRA
      type: array
      default: ["a", "b"]
      description: Extra arguments.
  workspaces:
    - name: data
      description: Where the data goes.
    - name: cache
      optional: true
      description: An optional cache.
  results:
    - name: SHARE
      description: The share, in percent.
  steps:
    - name: shift
      image: ghcr.io/canaryline/canaryline-steps:v0.1.0 # pinned by the generator
      command: ["/usr/local/bin/alpha"]
      args: ["$(params.EXTRA[*])"]
      env:
        - name: APP
          value: $(params.APP)
        - name: WEIGHT
          value: $(params.WEIGHT)
        - name: MODE
          value: $(params.MODE)
        - name: DATA
          value: $(workspaces.data.path)
`,
	"tasks/beta.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: beta
rules: []
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: beta
  labels:
    app.kubernetes.io/version: "0.1"
  annotations:
    tekton.dev/pipelines.minVersion: "0.56.0"
    tekton.dev/categories: "Monitoring"
    tekton.dev/tags: "test"
    tekton.dev/displayName: "beta: check something"
    tekton.dev/platforms: "linux/amd64"
spec:
  description: Beta checks something.
  params:
    - name: TARGET
      type: string
      default: ""
      description: What to check; empty checks everything.
  steps:
    - name: check
      image: ghcr.io/canaryline/canaryline-steps:v0.1.0
      command: ["/usr/local/bin/beta"]
      env:
        - name: TARGET
          value: $(params.TARGET)
  sidecars:
    - name: helper
      image: ` + busybox + `
      command: ["sleep", "infinity"]
`,
	"pipelines/demo.yaml": `apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: demo
  labels:
    app.kubernetes.io/version: "0.1"
  annotations:
    tekton.dev/pipelines.minVersion: "0.56.0"
    tekton.dev/categories: "Deployment"
    tekton.dev/tags: "canary"
    tekton.dev/displayName: "demo: alpha then beta"
    tekton.dev/platforms: "linux/amd64"
spec:
  description: |-
    Demo runs alpha, then beta.

    Two steps.
  params:
    - name: app
      type: string
      default: ""
      description: The application.
    - name: target
      type: string
      description: What beta checks.
  workspaces:
    - name: shared
      description: Shared data.
  tasks:
    - name: shift
      taskRef:
        name: alpha
      params:
        - name: APP
          value: $(params.app)
        - name: WEIGHT
          value: "10"
      workspaces:
        - name: data
          workspace: shared
    - name: check
      runAfter: [shift]
      taskRef:
        name: beta
      params:
        - name: TARGET
          value: $(params.target)
  finally:
    - name: inline
      taskSpec:
        steps:
          - name: say
            image: ghcr.io/canaryline/canaryline-steps:v0.1.0
            command: ["/usr/local/bin/say"]
`,
}

// fixtureRoot writes the fixture (with files replaced or added by overrides; "" removes a file) into a temp root.
func fixtureRoot(t *testing.T, overrides map[string]string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{}
	for k, v := range fixtureFiles {
		files[k] = v
	}
	for k, v := range overrides {
		if v == "" {
			delete(files, k)
			continue
		}
		files[k] = v
	}
	for name, content := range files {
		writeTestFile(t, filepath.Join(root, name), content)
	}
	return root
}

func writeTestFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// repoRoot is the real repository's root.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module github.com/canaryline/canaryline")) {
		t.Skipf("not in the canaryline repository (%s)", root)
	}
	return root
}

// realRoot copies the real tasks/ and pipelines/ (read only) into a temp root.
func realRoot(t *testing.T) string {
	t.Helper()
	src := repoRoot(t)
	root := t.TempDir()
	for _, dir := range []string{"tasks", "pipelines"} {
		copyTree(t, filepath.Join(src, dir), filepath.Join(root, dir))
	}
	return root
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && file == src {
				return fs.SkipAll
			}
			return err
		}
		rel, _ := filepath.Rel(src, file)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hashTree maps every file under dir (relative slash path) to its content's hash.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && file == dir {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, file)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sourceNames lists the names of the Tasks and Pipelines in a root's sources, read independently of the generator.
func sourceNames(t *testing.T, root string) (tasks, pipelines []string) {
	t.Helper()
	for _, dir := range []string{"tasks", "pipelines"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			for {
				var doc struct {
					APIVersion string `yaml:"apiVersion"`
					Kind       string `yaml:"kind"`
					Metadata   struct {
						Name string `yaml:"name"`
					} `yaml:"metadata"`
				}
				if err := dec.Decode(&doc); err != nil {
					break
				}
				if !strings.HasPrefix(doc.APIVersion, "tekton.dev/") {
					continue
				}
				switch doc.Kind {
				case "Task":
					tasks = append(tasks, doc.Metadata.Name)
				case "Pipeline":
					pipelines = append(pipelines, doc.Metadata.Name)
				}
			}
		}
	}
	return tasks, pipelines
}

// testRoots are the trees the table-driven tests run against.
var testRoots = []struct {
	name string
	root func(*testing.T) string
}{
	{"fixture", func(t *testing.T) string { return fixtureRoot(t, nil) }},
	{"real", realRoot},
}

// generate runs Generate with the test digest and fails the test on error.
func generate(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files, err := Generate(Options{Root: root, ImageDigest: testDigest})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return files
}
