// Command kubectl-canaryline is canaryline's kubectl and oc plugin: `kubectl canaryline status|approve|reject|abort
// APP` (installed as kubectl-canaryline or oc-canaryline on PATH, or with Krew). It links the release code only.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/canaryline/canaryline/internal/tools/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := plugin.Main(ctx, plugin.Prog(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
