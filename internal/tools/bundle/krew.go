package bundle

import (
	"context"
	"io"
)

// KrewVersion is the Krew release KrewBinary builds: the kubectl plugin manager that installs canaryline's plugin
// from its manifest.
const KrewVersion = "v0.4.3"

// KrewBinary returns the path of krew (sigs.k8s.io/krew KrewVersion) under cacheDir (DefaultCacheDir when empty),
// building it from the Go module proxy in a scratch module first when it is not there (about a minute on 2
// cores). Krew cannot be a dependency of this module: it requires an old k8s.io/client-go.
func KrewBinary(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	root, err := toolRoot(cacheDir, "krew", KrewVersion)
	if err != nil {
		return "", err
	}
	return scratchBuild{
		Name:     "krew",
		Root:     root,
		Module:   "sigs.k8s.io/krew",
		Version:  KrewVersion,
		Pkg:      "sigs.k8s.io/krew/cmd/krew",
		LDFlags:  "-s -w",
		Estimate: "about a minute on 2 cores, less with a warm Go build cache",
	}.ensure(ctx, log)
}
