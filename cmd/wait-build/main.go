// Command wait-build is the canaryline wait-build step on its own, for running outside the step image (the image runs
// the same code through the multi-call binary canaryline-steps).
package main

import (
	"github.com/canaryline/canaryline/internal/runtime/build"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

func main() { steps.Main(steps.Table{steps.WaitBuild: build.WaitMain}, steps.WaitBuild) }
