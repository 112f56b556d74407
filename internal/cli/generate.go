package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/canaryline/canaryline/internal/pipelinegen"
)

// generateCmd writes (or with --check, checks) the generated Pipelines in pipelines/.
func generateCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "pipelines" {
		return usagef("generate: say pipelines")
	}
	fs := newFlags("generate pipelines", stderr)
	root := fs.String("root", ".", "repository root")
	check := fs.Bool("check", false, "only check that pipelines/ is up to date")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	files, err := pipelinegen.Generate()
	if err != nil {
		return err
	}
	dir := filepath.Join(*root, "pipelines")
	var stale []string
	for _, name := range pipelinegen.Names() {
		path := filepath.Join(dir, name)
		cur, _ := os.ReadFile(path)
		if bytes.Equal(cur, files[name]) {
			continue
		}
		stale = append(stale, path)
		if !*check {
			if err := os.WriteFile(path, files[name], 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", path)
		}
	}
	if *check && len(stale) > 0 {
		return fmt.Errorf("stale generated Pipelines (run make pipelines): %v", stale)
	}
	return nil
}
