// Command verify-health is the canaryline verify-health step on its own, for running outside the step image (the image runs
// the same code through the multi-call binary canaryline-steps).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/canaryline/canaryline/internal/health"
	"github.com/canaryline/canaryline/internal/steps"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := steps.Dispatch(ctx, "verify-health", os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
