// Command start-build is the canaryline start-build step on its own, for running outside the step image (the image runs
// the same code through the multi-call binary canaryline-steps).
package main

import (
	"github.com/canaryline/canaryline/internal/runtime/build"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

func main() { steps.Main(steps.Table{steps.StartBuild: build.StartMain}, steps.StartBuild) }
