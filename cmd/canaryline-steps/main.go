// Command canaryline-steps is the multi-call binary behind every canaryline
// Tekton step. Invoke it through a link named after a step
// (/usr/local/bin/shift-canary) or as "canaryline-steps STEP";
// "canaryline-steps --list" prints the step names.
//
// Its table lists the step implementations; its test checks that it has every
// step. This command must stay free of github.com/tektoncd/pipeline to keep
// the step image small (main_test.go).
package main

import (
	"os"

	"github.com/canaryline/canaryline/internal/runtime/build"
	"github.com/canaryline/canaryline/internal/runtime/health"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

// table is every step of the step image.
var table = steps.Table{
	steps.StartBuild:        build.StartMain,
	steps.WaitBuild:         build.WaitMain,
	steps.ShiftCanary:       release.ShiftMain,
	steps.VerifyHealth:      health.Main,
	steps.PromoteOrRollback: release.DecideMain,
}

func main() { steps.Main(table, os.Args[0]) }
