// Command promote-or-rollback is the canaryline promote-or-rollback step on its own, for running outside the step image (the image runs
// the same code through the multi-call binary canaryline-steps).
package main

import (
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

func main() {
	steps.Main(steps.Table{steps.PromoteOrRollback: release.DecideMain}, steps.PromoteOrRollback)
}
