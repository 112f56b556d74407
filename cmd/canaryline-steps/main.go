// Command canaryline-steps is the multi-call binary behind every canaryline
// Tekton step. Invoke it through a link named after a step
// (/usr/local/bin/shift-canary ...) or as "canaryline-steps STEP ...";
// "canaryline-steps --list" prints the step names.
//
// Step implementations register themselves with package steps from init
// functions; link them in here with blank imports. This command must stay
// free of github.com/tektoncd/pipeline to keep the step image small.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/canaryline/canaryline/internal/build"   // start-build, wait-build
	_ "github.com/canaryline/canaryline/internal/health"  // verify-health
	_ "github.com/canaryline/canaryline/internal/release" // shift-canary, promote-or-rollback
	"github.com/canaryline/canaryline/internal/steps"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := steps.Dispatch(ctx, os.Args[0], os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
