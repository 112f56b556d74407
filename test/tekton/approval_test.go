package tekton

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryline/canaryline/internal/dev/devclustertest"
	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/release"
	"github.com/canaryline/canaryline/internal/tools/tektonrun"
)

// answerWhenWaiting answers the release's approval gate once verify-3 of a PipelineRun of a.ns has been running
// for longer than its analysis takes (it is waiting), and reports on the channel whether it saw it waiting.
func answerWhenWaiting(t *testing.T, a *app, decision string) <-chan bool {
	seen := make(chan bool, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		running := func() (string, bool) {
			trs, err := a.tk.Tekton.TektonV1().TaskRuns(a.ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineTask=verify-3"})
			if err != nil {
				return "", false
			}
			for _, tr := range trs.Items { // the PipelineRun's, not an earlier one's
				if tr.Status.StartTime != nil && !tr.IsDone() {
					return tr.Labels["tekton.dev/pipelineRun"], true
				}
			}
			return "", false
		}
		for ctx.Err() == nil {
			if pr, ok := running(); ok {
				time.Sleep(10 * time.Second) // the analysis (2 measurements, 1 s apart) is long over
				again, still := running()
				still = still && again == pr
				kube, _ := kubeclient.NewForConfig(cluster.Config())
				_, err := release.RecordApproval(ctx, kube.CoordinationV1().Leases(a.ns), a.name,
					release.Approval{Release: pr, Decision: decision, By: "release-manager", Reason: "tested", At: time.Now()})
				if err != nil {
					t.Errorf("record the answer: %v", err)
				}
				seen <- still
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		seen <- false
	}()
	return seen
}

// TestTektonApprovalGate: canary-release-approval-cli on the Tekton controller. The last analysis waits for an
// answer recorded on the release; approved, the PipelineRun promotes; rejected, verify-3 fails with the rejection as
// its reason, promote is skipped and finally rolls the release back.
func TestTektonApprovalGate(t *testing.T) {
	devclustertest.RequireTekton(t, cluster)
	a := newApp(t)
	waited := answerWhenWaiting(t, a, release.Approve)
	pr := a.run(t, "canary-release-approval-cli", a.quickParams(nil), nil, tektonrun.Options{})
	if !<-waited {
		t.Error("verify-3 was not waiting for the approval")
	}
	if status(pr) != "Succeeded/Succeeded" {
		t.Fatalf("approved: %s; tasks %v", status(pr), taskStates(t, a, pr))
	}
	trs, _ := tektonrun.TaskRuns(context.Background(), a.tk, pr)
	if got := tektonrun.Results(trs["verify-3"])["REASON"]; !strings.HasPrefix(got, "approved by release-manager: tested") {
		t.Errorf("verify-3 REASON %q; want the approval first", got)
	}
	if got := tektonrun.Results(trs["promote"])["DECISION"]; got != "promote" {
		t.Errorf("promote DECISION %q", got)
	}

	before := a.snapshot(t)
	waited = answerWhenWaiting(t, a, release.Reject)
	pr = a.run(t, "canary-release-approval-cli", a.quickParams(map[string]string{"git-revision": strings.Repeat("cd", 20)}), nil, tektonrun.Options{})
	if !<-waited {
		t.Error("the second release's verify-3 was not waiting for the answer")
	}
	states := taskStates(t, a, pr)
	if !strings.HasPrefix(status(pr), "Failed") || !strings.HasPrefix(states["verify-3"], "Failed") || states["promote"] != "" || states["end-release"] != "Succeeded" {
		t.Fatalf("rejected: %s, tasks %v; want Failed, verify-3 failed, promote skipped, end-release run", status(pr), states)
	}
	trs, _ = tektonrun.TaskRuns(context.Background(), a.tk, pr)
	if got := tektonrun.Results(trs["end-release"])["DECISION"]; got != "rollback" {
		t.Errorf("end-release DECISION %q; want rollback", got)
	}
	if after := a.snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("after the rejection:\n%+v\nwant as before:\n%+v", after, before)
	}
}
