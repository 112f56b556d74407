package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tektonResolveSrc is a small program around Tekton's bundles resolver (pkg/resolution/resolver/bundle). That package
// imports k8schain and the cloud registry helpers, modules canaryline's go.mod does not have, so the program is built
// in a scratch module that requires the same tektoncd/pipeline version as canaryline.
//
//go:embed testdata/tektonresolve/main.go
var tektonResolveSrc string

// pipelineVersion is the tektoncd/pipeline version canaryline's go.mod selects.
func pipelineVersion(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", "github.com/tektoncd/pipeline")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	v := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(v, "v") {
		t.Fatalf("go list -m github.com/tektoncd/pipeline: %q %v", v, err)
	}
	return v
}

func cacheDir(t *testing.T) string {
	d, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tektonResolve builds (once, cached) the resolver program.
func tektonResolve(t *testing.T, ctx context.Context) string {
	t.Helper()
	v := pipelineVersion(t)
	sum := sha256.Sum256([]byte(tektonResolveSrc))
	bin, err := scratchBuild{
		Name:     "tektonresolve",
		Root:     filepath.Join(cacheDir(t), "tektonresolve", v+"-"+hex.EncodeToString(sum[:6])),
		Module:   "github.com/tektoncd/pipeline",
		Version:  v,
		Pkg:      ".",
		Files:    map[string]string{"main.go": tektonResolveSrc},
		Estimate: "about 2 min on 2 cores with a cold Go build cache",
	}.ensure(ctx, os.Stderr)
	if err != nil {
		t.Fatalf("build Tekton's bundles resolver: %v", err)
	}
	return bin
}

type resolved struct {
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	Data        []byte            `json:"data"`
	Annotations map[string]string `json:"annotations"`
	URI         string            `json:"uri"`
	Digest      map[string]string `json:"digest"`
	EntryPoint  string            `json:"entryPoint"`
	Error       string            `json:"error"`
}

// TestTektonBundlesResolver pushes the fixture bundle to a real registry and resolves every Task and Pipeline with
// Tekton's own bundles resolver (ResolveRequest, the function the resolvers controller runs for `resolver: bundles`),
// checking that each comes back byte for byte.
func TestTektonBundlesResolver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Tekton's bundles resolver from the Go module proxy (minutes the first time)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin := tektonResolve(t, ctx)

	rs, ref := pushFixture(t, startRegistry(t))
	args := []string{ref}
	for _, r := range rs {
		args = append(args, strings.ToLower(r.Kind), r.Name)
	}
	args = append(args, "task", "missing", "pipeline", "first", "Task", "hello")
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
	}
	var got []resolved
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got) != len(rs)+3 {
		t.Fatalf("%d answers for %d requests:\n%s", len(got), len(rs)+3, out)
	}
	digest := ref[strings.LastIndex(ref, "@sha256:")+len("@sha256:"):]
	repo := ref[:strings.LastIndex(ref, ":test@")]
	for i, r := range rs {
		g := got[i]
		if g.Error != "" {
			t.Errorf("%s: %s", r.ID(), g.Error)
			continue
		}
		if !bytes.Equal(g.Data, r.Data) {
			t.Errorf("%s: resolved bytes differ from the YAML:\n%s", r.ID(), g.Data)
		}
		wantAnn := map[string]string{
			"resolution.tekton.dev/" + AnnotationKind:       strings.ToLower(r.Kind),
			"resolution.tekton.dev/" + AnnotationName:       r.Name,
			"resolution.tekton.dev/" + AnnotationAPIVersion: r.APIVersion,
		}
		for k, v := range wantAnn {
			if g.Annotations[k] != v {
				t.Errorf("%s: annotation %s = %q, want %q (all: %v)", r.ID(), k, g.Annotations[k], v, g.Annotations)
			}
		}
		if g.Digest["sha256"] != digest || g.URI != repo || g.EntryPoint != r.Name {
			t.Errorf("%s: refSource %s %v %s, want %s sha256:%s %s", r.ID(), g.URI, g.Digest, g.EntryPoint, repo, digest, r.Name)
		}
	}
	for _, g := range got[len(rs) : len(rs)+2] {
		if !strings.Contains(g.Error, "could not find object") {
			t.Errorf("%s %s: error %q, want not found", g.Kind, g.Name, g.Error)
		}
	}
	// The resolver matches kinds case-insensitively.
	if g := got[len(rs)+2]; g.Error != "" || !bytes.Contains(g.Data, []byte("name: hello")) {
		t.Errorf("Task hello: %+v", g)
	}
}
