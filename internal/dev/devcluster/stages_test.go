package devcluster

import (
	"strings"
	"testing"
)

func TestWithReadyDelay(t *testing.T) {
	stage := "kind: Stage\nspec:\n  selector:\n    matchExpressions:\n    - key: '.status.phase'\n  next:\n    statusTemplate: |\n      phase: Running\n"
	got, err := withReadyDelay([]byte(stage))
	if err != nil {
		t.Fatal(err)
	}
	want := "    - key: '.status.phase'\n  delay:\n    durationMilliseconds: 0\n    durationFrom:\n" +
		"      expressionFrom: '.metadata.annotations[\"pod-ready.stage.kwok.x-k8s.io/delay\"]'\n  next:\n"
	if !strings.Contains(string(got), want) {
		t.Errorf("withReadyDelay =\n%s\nwant it to contain\n%s", got, want)
	}
	if _, err := withReadyDelay([]byte("kind: Stage\n")); err == nil {
		t.Error("withReadyDelay of a stage without next: no error")
	}
}

func TestUnlessJobPodFails(t *testing.T) {
	stage := "kind: Stage\nspec:\n  selector:\n    matchExpressions:\n    - key: '.status.phase'\n"
	got, err := unlessJobPodFails([]byte(stage))
	if err != nil {
		t.Fatal(err)
	}
	want := "    matchExpressions:\n    - key: '.metadata.annotations[\"" + JobPodFailAnnotation + "\"]'\n      operator: 'NotIn'\n      values:\n      - 'true'\n    - key: '.status.phase'\n"
	if !strings.Contains(string(got), want) {
		t.Errorf("unlessJobPodFails =\n%s\nwant it to contain\n%s", got, want)
	}
	if _, err := unlessJobPodFails([]byte("kind: Stage\n")); err == nil {
		t.Error("unlessJobPodFails of a stage without matchExpressions: no error")
	}
}
