// Command canaryline is the project's tool for people and CI: the embedded local control plane
// (`canaryline cluster up|down|status`), the step image (`canaryline image`) and the demo.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
	"github.com/canaryline/canaryline/internal/tools/cli"
)

func main() {
	devcluster.MaybeNodeInit() // this binary is also the real node's supervisor
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
