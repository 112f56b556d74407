package devcluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
)

// Versions pins what the control plane is built from. All of it comes from the Go module proxy.
type Versions struct {
	Kubernetes string // k8s.io/kubernetes tag; staging modules use v0.<minor>.<patch>
	Etcd       string // go.etcd.io/etcd/server/v3
	KWOK       string // sigs.k8s.io/kwok
}

// DefaultVersions are the versions known to build with Go 1.26 from the module proxy.
var DefaultVersions = Versions{Kubernetes: "v1.34.4", Etcd: "v3.6.16", KWOK: "v0.8.0"}

// recipe is bumped whenever the way binaries are built changes, so old caches are not reused.
const recipe = "r1"

// stagesVersion names the KWOK stages file: bumped whenever writeKWOKStages writes something else, so that a
// cached control plane gets the new file (written beside its binaries, under the build lock) without a rebuild.
const stagesVersion = "s3"

// PodReadyDelayAnnotation, set on a pod (template) to a Go duration such as "2s", holds its Ready back on the
// KWOK nodes for that long, as a slow readiness probe would; without it a pod is Ready at once. KWOK's own
// general pod stages read the same annotation.
const PodReadyDelayAnnotation = "pod-ready.stage.kwok.x-k8s.io/delay"

// JobPodFailAnnotation, set to "true" on the pod template of a Job, makes its pods fail on the KWOK nodes (exit
// code 1) where they would otherwise complete: the Job controller then fails the Job as it would a real one.
const JobPodFailAnnotation = "pod-fail.stage.canaryline.dev/fail"

// binaries is the order in which the control plane is built, fastest-to-fail first.
var binaries = []string{"etcd", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "kwok"}

// Key names the cache entry for these versions.
func (v Versions) Key() string {
	return fmt.Sprintf("k8s-%s_etcd-%s_kwok-%s_%s", v.Kubernetes, v.Etcd, v.KWOK, recipe)
}

// DefaultCacheDir is where built binaries are kept: $CANARYLINE_CACHE_DIR, else the user cache directory.
func DefaultCacheDir() (string, error) { return gobuild.DefaultCacheDir() }

// Binaries are the paths of a built control plane.
type Binaries struct {
	Dir        string // bin/ with etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
	KWOKStages string // the kwok stage configuration (node and pod lifecycles)
}

// Path returns the path of one binary.
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// EnsureBinaries returns the cached control-plane binaries for v, building them first when the cache has none.
// Concurrent callers (parallel test packages) wait for one build instead of building twice.
func EnsureBinaries(ctx context.Context, cacheDir string, v Versions, log io.Writer) (Binaries, error) {
	root := filepath.Join(cacheDir, "controlplane", v.Key())
	bins := Binaries{Dir: filepath.Join(root, "bin"), KWOKStages: filepath.Join(root, "kwok-stages-"+stagesVersion+".yaml")}
	err := gobuild.Cached(ctx, root, "devcluster", log, func() bool { return complete(bins) }, func() error {
		b := &builder{root: root, v: v, run: gobuild.NewRunner("devcluster", filepath.Join(root, "build.log"), log)}
		if binariesComplete(bins) { // built before the stages file changed: write the new one only
			kwokMod, err := b.scratchModule(ctx, "kwok", "sigs.k8s.io/kwok@"+b.v.KWOK, "sigs.k8s.io/kwok/cmd/kwok")
			if err != nil {
				return err
			}
			return b.writeKWOKStages(ctx, kwokMod, bins.KWOKStages)
		}
		fmt.Fprintf(log, "devcluster: building the control plane %s into %s (first run only: about 7 min on 2 cores, less with a warm Go build cache)\n", v.Key(), root)
		if err := b.buildAll(ctx, bins); err != nil {
			return err
		}
		fmt.Fprintf(log, "devcluster: control plane built in %s\n", b.run.Elapsed().Round(time.Second))
		return nil
	})
	return bins, err
}

func complete(b Binaries) bool {
	_, err := os.Stat(b.KWOKStages)
	return err == nil && binariesComplete(b)
}

func binariesComplete(b Binaries) bool {
	for _, n := range binaries {
		if fi, err := os.Stat(b.Path(n)); err != nil || fi.Size() == 0 {
			return false
		}
	}
	return true
}

type builder struct {
	root string
	v    Versions
	run  *gobuild.Runner
}

func (b *builder) buildAll(ctx context.Context, bins Binaries) error {
	return gobuild.InstallDir(bins.Dir, func(tmpBin string) error {
		k8sMod, err := b.kubernetesModule(ctx)
		if err != nil {
			return err
		}
		etcdMod, err := b.scratchModule(ctx, "etcd", "go.etcd.io/etcd/server/v3@"+b.v.Etcd, "go.etcd.io/etcd/server/v3")
		if err != nil {
			return err
		}
		kwokMod, err := b.scratchModule(ctx, "kwok", "sigs.k8s.io/kwok@"+b.v.KWOK, "sigs.k8s.io/kwok/cmd/kwok")
		if err != nil {
			return err
		}
		k8sLdflags := kubernetesLdflags(b.v.Kubernetes)
		targets := map[string]struct{ dir, pkg, ldflags string }{
			"etcd":                    {etcdMod, "go.etcd.io/etcd/server/v3", "-s -w"},
			"kube-scheduler":          {k8sMod, "k8s.io/kubernetes/cmd/kube-scheduler", k8sLdflags},
			"kube-controller-manager": {k8sMod, "k8s.io/kubernetes/cmd/kube-controller-manager", k8sLdflags},
			"kube-apiserver":          {k8sMod, "k8s.io/kubernetes/cmd/kube-apiserver", k8sLdflags},
			"kwok":                    {kwokMod, "sigs.k8s.io/kwok/cmd/kwok", "-s -w"},
		}
		for i, name := range binaries {
			t := targets[name]
			step := fmt.Sprintf("build %s (%d/%d)", name, i+1, len(binaries))
			if err := b.run.Go(ctx, step, t.dir, "build", "-ldflags="+t.ldflags, "-o", filepath.Join(tmpBin, name), t.pkg); err != nil {
				return err
			}
		}
		return b.writeKWOKStages(ctx, kwokMod, bins.KWOKStages)
	})
}

// kubernetesLdflags are the linker flags of every Kubernetes binary: stripped, and stamped with version (as
// `--version` and the apiserver's /version report it). The real node's kubelet is linked with the same flags.
func kubernetesLdflags(version string) string {
	minor := strings.SplitN(strings.TrimPrefix(version, "v1."), ".", 2)[0]
	stamp := []string{"-s", "-w"}
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		stamp = append(stamp, "-X", p+".gitVersion="+version, "-X", p+".gitMajor=1", "-X", p+".gitMinor="+minor,
			"-X", p+".gitTreeState=clean")
	}
	return strings.Join(stamp, " ")
}

// kubernetesModule prepares the control plane's scratch module requiring k8s.io/kubernetes.
func (b *builder) kubernetesModule(ctx context.Context) (string, error) {
	return kubernetesModule(ctx, b.run, filepath.Join(b.root, "src", "kubernetes"), "canaryline.local/controlplane",
		b.v.Kubernetes, []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
			"k8s.io/kubernetes/cmd/kube-scheduler"})
}

// kubernetesModule prepares, in dir, a scratch module requiring k8s.io/kubernetes version and importing pkgs.
// `go install k8s.io/kubernetes/cmd/...` does not work because kubernetes replaces its staging modules with local
// paths; the main module must pin them.
func kubernetesModule(ctx context.Context, run *gobuild.Runner, dir, module, version string, pkgs []string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err == nil {
		return dir, nil
	}
	mod := "k8s.io/kubernetes@" + version
	var info struct{ GoMod, Error string }
	out, err := gobuild.Output(ctx, os.TempDir(), "mod", "download", "-json", mod)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", mod, err)
	}
	if err := json.Unmarshal(out, &info); err != nil || info.GoMod == "" {
		return "", fmt.Errorf("download %s: %s", mod, info.Error)
	}
	gomod, err := os.ReadFile(info.GoMod)
	if err != nil {
		return "", err
	}
	staging := "v0." + strings.TrimPrefix(version, "v1.")
	extra := "require k8s.io/kubernetes " + version + "\n\n"
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "=> ./staging/"); i > 0 {
			m := strings.Fields(strings.TrimPrefix(line, "replace"))[0]
			extra += fmt.Sprintf("replace %s => %s %s\n", m, m, staging)
		}
	}
	if err := gobuild.WriteScratchModule(dir, module, pkgs, extra); err != nil {
		return "", err
	}
	if err := run.Go(ctx, "resolve k8s.io/kubernetes "+version+" modules", dir, "mod", "tidy"); err != nil {
		return "", err
	}
	return dir, nil
}

// scratchModule prepares a module of its own for one upstream binary, so its dependencies resolve as upstream says.
func (b *builder) scratchModule(ctx context.Context, name, modVersion, pkg string) (string, error) {
	return scratchModule(ctx, b.run, filepath.Join(b.root, "src", name), name, modVersion, pkg)
}

// scratchModule prepares, in dir, a module requiring modVersion (module@version) and importing pkgs.
func scratchModule(ctx context.Context, run *gobuild.Runner, dir, name, modVersion string, pkgs ...string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err == nil {
		return dir, nil
	}
	if err := gobuild.WriteScratchModule(dir, "canaryline.local/"+name+"build", pkgs, ""); err != nil {
		return "", err
	}
	if err := run.Go(ctx, "resolve "+modVersion, dir, "get", modVersion); err != nil {
		return "", err
	}
	if err := run.Go(ctx, "resolve "+modVersion+" dependencies", dir, "mod", "tidy"); err != nil {
		return "", err
	}
	return dir, nil
}

// writeKWOKStages concatenates the stage files shipped in the kwok module: the standalone kwok binary has none
// built in. These give fake nodes that stay Ready and pods that become Running/Ready (at once, or after
// PodReadyDelayAnnotation) and disappear when deleted.
func (b *builder) writeKWOKStages(ctx context.Context, kwokMod, dst string) error {
	out, err := gobuild.Output(ctx, kwokMod, "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok")
	if err != nil {
		return fmt.Errorf("locate the kwok module: %w", err)
	}
	stages := filepath.Join(strings.TrimSpace(string(out)), "kustomize", "stage")
	var buf bytes.Buffer
	for _, f := range []string{
		"node/fast/node-initialize.yaml",
		"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/fast/pod-ready.yaml",
		"pod/fast/pod-complete.yaml",
		"pod/fast/pod-delete.yaml",
	} {
		data, err := os.ReadFile(filepath.Join(stages, f))
		if err != nil {
			return fmt.Errorf("read kwok stage %s: %w", f, err)
		}
		switch f {
		case "pod/fast/pod-ready.yaml":
			data, err = withReadyDelay(data)
		case "pod/fast/pod-complete.yaml":
			data, err = unlessJobPodFails(data)
		}
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(data)
		buf.WriteString("\n")
	}
	buf.WriteString("---\n" + jobPodFailStage)
	return gobuild.InstallFile(dst, func(tmp string) error { return os.WriteFile(tmp, buf.Bytes(), 0o644) })
}

// withReadyDelay adds to KWOK's fast pod-ready stage a delay read from PodReadyDelayAnnotation: none when the
// annotation is absent (or not a duration), as before.
func withReadyDelay(stage []byte) ([]byte, error) {
	next := []byte("\n  next:\n")
	if bytes.Count(stage, next) != 1 {
		return nil, fmt.Errorf("kwok stage pod-ready: no single \"next:\" to put a delay before")
	}
	delay := "\n  delay:\n    durationMilliseconds: 0\n    durationFrom:\n" +
		"      expressionFrom: '.metadata.annotations[\"" + PodReadyDelayAnnotation + "\"]'"
	return bytes.Replace(stage, next, append([]byte(delay), next...), 1), nil
}

// unlessJobPodFails keeps KWOK's pod-complete stage (a Job's Running pod completes) off the pods that carry
// JobPodFailAnnotation: jobPodFailStage fails those.
func unlessJobPodFails(stage []byte) ([]byte, error) {
	anchor := []byte("    matchExpressions:\n")
	if bytes.Count(stage, anchor) != 1 {
		return nil, fmt.Errorf("kwok stage pod-complete: no single \"matchExpressions:\" to add to")
	}
	unless := "    - key: '.metadata.annotations[\"" + JobPodFailAnnotation + "\"]'\n      operator: 'NotIn'\n      values:\n      - 'true'\n"
	return bytes.Replace(stage, anchor, append(append([]byte{}, anchor...), unless...), 1), nil
}

// jobPodFailStage fails a Job's Running pod that carries JobPodFailAnnotation: its containers exit 1.
const jobPodFailStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: canaryline-job-pod-fail
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.annotations["` + JobPodFailAnnotation + `"]'
      operator: 'In'
      values:
      - 'true'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences.[].kind'
      operator: 'In'
      values:
      - 'Job'
  next:
    statusTemplate: |
      {{ $now := Now }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 1
            finishedAt: {{ $now | Quote }}
            reason: Error
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
`

// Prepare builds (or finds cached) everything Start needs: the binaries and the CRDs.
func Prepare(ctx context.Context, cacheDir string, v Versions, log io.Writer) (Binaries, error) {
	bins, err := EnsureBinaries(ctx, cacheDir, v, log)
	if err != nil {
		return bins, err
	}
	_, err = ensureCRDs(ctx, cacheDir, log)
	return bins, err
}
