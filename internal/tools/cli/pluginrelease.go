package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/canaryline/canaryline/internal/tools/plugin"
)

// pluginRelease is `canaryline plugin release`: the kubectl/oc plugin built for every platform into reproducible
// archives, and the Krew manifest that names them.
func pluginRelease(fs *flag.FlagSet, _ Env) runFunc {
	dir := fs.String("dir", "_output/plugin", "write the archives and canaryline.yaml (the Krew manifest) here")
	version := fs.String("version", "v0.1.0", "the release's version, as Krew wants it (vMAJOR.MINOR.PATCH)")
	baseURL := fs.String("base-url", "", "where the archives are published (default: the GitHub release of --version)")
	platforms := fs.String("platforms", "", "OS/ARCH,... to build (default: "+platformList(plugin.Platforms)+")")
	return func(ctx context.Context, _ []string, stdout, stderr io.Writer) error {
		root, err := os.Getwd()
		if err != nil {
			return err
		}
		ps, err := parsePlatforms(*platforms)
		if err != nil {
			return err
		}
		if *baseURL == "" {
			*baseURL = "https://github.com/canaryline/canaryline/releases/download/" + *version
		}
		path, err := plugin.Release{Root: root, Dir: *dir, Version: *version, BaseURL: *baseURL, Platforms: ps, Log: stderr}.Build(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
		return nil
	}
}

func platformList(ps []plugin.Platform) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// parsePlatforms reads --platforms: empty is every platform.
func parsePlatforms(s string) ([]plugin.Platform, error) {
	if s == "" {
		return plugin.Platforms, nil
	}
	var out []plugin.Platform
	for _, p := range strings.Split(s, ",") {
		os, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || os == "" || arch == "" {
			return nil, usagef("plugin release: --platforms: %q is not OS/ARCH (e.g. linux/amd64)", p)
		}
		out = append(out, plugin.Platform{OS: os, Arch: arch})
	}
	return out, nil
}
