// Command verify-health is the canaryline verify-health step on its own, for running outside the step image (the image runs
// the same code through the multi-call binary canaryline-steps).
package main

import (
	"github.com/canaryline/canaryline/internal/runtime/health"
	"github.com/canaryline/canaryline/internal/runtime/steps"
)

func main() { steps.Main(steps.Table{steps.VerifyHealth: health.Main}, steps.VerifyHealth) }
