package devcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/dev/gobuild"
	"github.com/canaryline/canaryline/internal/tools/image"
)

// tektonRecipe is bumped whenever the way Tekton's binaries or images are built changes.
const tektonRecipe = "t1"

// tektonProgram is one Tekton binary: its name under bin/, the module@version it comes from and its package.
type tektonProgram struct{ name, module, pkg string }

var tektonPrograms = []tektonProgram{
	{"controller", TektonPipeline, "github.com/tektoncd/pipeline/cmd/controller"},
	{"webhook", TektonPipeline, "github.com/tektoncd/pipeline/cmd/webhook"},
	{"resolvers", TektonPipeline, "github.com/tektoncd/pipeline/cmd/resolvers"},
	{"entrypoint", TektonPipeline, "github.com/tektoncd/pipeline/cmd/entrypoint"},
	{"nop", TektonPipeline, "github.com/tektoncd/pipeline/cmd/nop"},
	{"sidecarlogresults", TektonPipeline, "github.com/tektoncd/pipeline/cmd/sidecarlogresults"},
	{"workingdirinit", TektonPipeline, "github.com/tektoncd/pipeline/cmd/workingdirinit"},
	{"triggers-controller", TektonTriggers, "github.com/tektoncd/triggers/cmd/controller"},
	{"eventlistenersink", TektonTriggers, "github.com/tektoncd/triggers/cmd/eventlistenersink"},
	{"interceptors", TektonTriggers, "github.com/tektoncd/triggers/cmd/interceptors"},
}

// tektonPodPrograms are the programs of Tekton's own images, which TaskRun pods run from /ko-app/<name> (the
// layout ko gives them upstream); the controller's image flags name them.
var tektonPodPrograms = []string{"entrypoint", "nop", "sidecarlogresults", "workingdirinit"}

// TektonImage is the name the real node knows Tekton's image of program by (entrypoint, nop, ...).
func TektonImage(program string) string {
	_, v, _ := strings.Cut(TektonPipeline, "@")
	return NodeRegistry + "/tekton/" + program + ":" + v
}

// TektonBinaries are the built Tekton programs and their images for the real node.
type TektonBinaries struct {
	Dir    string      // controller, webhook, resolvers, entrypoint, nop, ..., triggers-controller, eventlistenersink, interceptors
	Images []NodeImage // TektonImage(p) for each of tektonPodPrograms
}

// Path returns the path of one binary.
func (b TektonBinaries) Path(name string) string { return filepath.Join(b.Dir, name) }

func (b TektonBinaries) complete() bool {
	for _, p := range tektonPrograms {
		if !gobuild.Usable(b.Path(p.name)) {
			return false
		}
	}
	for _, img := range b.Images {
		if fi, err := os.Stat(img.Tarball); err != nil || fi.Size() == 0 {
			return false
		}
	}
	return true
}

// tektonKey names the cache directory of a Tekton build.
func tektonKey() string {
	return strings.NewReplacer("github.com/tektoncd/", "", "@", "-").Replace(TektonPipeline+"+"+TektonTriggers) + "-" + tektonRecipe
}

// EnsureTektonBinaries returns Tekton's and Triggers' programs at the versions go.mod pins (TektonPipeline,
// TektonTriggers), built from the module proxy on first use into cacheDir/tekton/<key>/bin, and the images of
// the programs TaskRun pods run. Each module is built in a scratch module of its own, so its dependencies resolve
// as upstream says. Concurrent callers wait for one build.
func EnsureTektonBinaries(ctx context.Context, cacheDir string, log io.Writer) (TektonBinaries, error) {
	root := filepath.Join(cacheDir, "tekton", tektonKey())
	bins := TektonBinaries{Dir: filepath.Join(root, "bin")}
	for _, p := range tektonPodPrograms {
		bins.Images = append(bins.Images, NodeImage{Name: TektonImage(p), Tarball: filepath.Join(root, "images", p+".tar")})
	}
	err := gobuild.Cached(ctx, root, "devcluster tekton", log, bins.complete, func() error {
		run := gobuild.NewRunner("devcluster tekton", filepath.Join(root, "build.log"), log)
		fmt.Fprintf(log, "devcluster tekton: building Tekton %s and Triggers %s into %s (first run only: about 5 min on 2 cores)\n",
			TektonPipeline, TektonTriggers, root)
		if err := buildTekton(ctx, run, root, bins); err != nil {
			return err
		}
		fmt.Fprintf(log, "devcluster tekton: built in %s\n", run.Elapsed().Round(time.Second))
		return nil
	})
	return bins, err
}

func buildTekton(ctx context.Context, run *gobuild.Runner, root string, bins TektonBinaries) error {
	return gobuild.InstallDir(bins.Dir, func(tmpBin string) error {
		mods, err := tektonModules(ctx, run, root)
		if err != nil {
			return err
		}
		for i, p := range tektonPrograms {
			step := fmt.Sprintf("build %s (%d/%d)", p.name, i+1, len(tektonPrograms))
			if _, _, err := run.Run(ctx, step, mods[p.module], staticEnv, "build", "-trimpath", "-ldflags=-s -w",
				"-o", filepath.Join(tmpBin, p.name), p.pkg); err != nil {
				return err
			}
		}
		return writeTektonImages(root, tmpBin, bins)
	})
}

// tektonModules prepares one scratch module per Tekton module (Pipelines, Triggers), importing its programs.
func tektonModules(ctx context.Context, run *gobuild.Runner, root string) (map[string]string, error) {
	mods := map[string]string{}
	for _, mod := range []string{TektonPipeline, TektonTriggers} {
		var pkgs []string
		for _, p := range tektonPrograms {
			if p.module == mod {
				pkgs = append(pkgs, p.pkg)
			}
		}
		name := strings.TrimPrefix(strings.Split(mod, "@")[0], "github.com/tektoncd/")
		dir, err := scratchModule(ctx, run, filepath.Join(root, "src", name), "tekton"+name, mod, pkgs...)
		if err != nil {
			return nil, err
		}
		mods[mod] = dir
	}
	return mods, nil
}

// writeTektonImages writes the image tarballs of the programs TaskRun pods run, from the binaries in binDir.
func writeTektonImages(root, binDir string, bins TektonBinaries) error {
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		return err
	}
	for i, p := range tektonPodPrograms {
		bin, err := os.ReadFile(filepath.Join(binDir, p))
		if err != nil {
			return err
		}
		img, err := programImage(programSpec{path: "/ko-app/" + p, user: "65532"}, bin)
		if err != nil {
			return fmt.Errorf("build image %s: %w", TektonImage(p), err)
		}
		err = gobuild.InstallFile(bins.Images[i].Tarball, func(tmp string) error {
			return image.WriteTarball(tmp, img, TektonImage(p))
		})
		if err != nil {
			return err
		}
	}
	return nil
}
