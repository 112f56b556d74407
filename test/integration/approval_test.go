package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/canaryline/canaryline/internal/runtime/release"
	canarylinecli "github.com/canaryline/canaryline/internal/tools/cli"
)

// canaryline runs the canaryline command in-process, as a person with kubeconfig would: its stdout, stderr and exit
// code.
func canaryline(t *testing.T, kubeconfig, ns string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--kubeconfig", kubeconfig, "--namespace", ns)
	code := canarylinecli.Main(context.Background(), args, &out, &errb)
	t.Logf("canaryline %s: exit %d\n%s%s", strings.Join(args[:2], " "), code, out.String(), errb.String())
	return out.String(), errb.String(), code
}

// gate starts verify-health as the approval gate of the release in progress.
func (a *app) gate(timeout string) func() stepRun {
	_, wait := startStep(a.t, "verify-health", a.kubeconfig, map[string]string{"APP": "shop", "RELEASE_ID": "shop-release-1",
		"INTERVAL": "1s", "COUNT": "1", "APPROVAL": "required", "APPROVAL_TIMEOUT": timeout})
	return wait
}

// answered is the approval the release Lease records.
func (a *app) answered() release.Approval {
	var ap release.Approval
	_ = json.Unmarshal([]byte(a.lease().Annotations[release.ApprovalAnnotation]), &ap)
	return ap
}

// TestApprovalGateWaitsForAnApproval: verify-health with APPROVAL=required gives no verdict while no one has
// answered; `canaryline approve` (as someone allowed to update the release record) ends the wait with a healthy
// verdict that names the approver, and the answer is recorded once.
func TestApprovalGateWaitsForAnApproval(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	done := make(chan stepRun, 1)
	wait := a.gate("2m")
	go func() { done <- wait() }()
	select {
	case r := <-done:
		t.Fatalf("the gate ended before anyone answered: exit %d %v", r.code, r.results)
	case <-time.After(4 * time.Second):
	}
	approver := stepsKubeconfigAs(t, a.ns, "release-manager", &rbacv1.Role{Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"},
		Resources: []string{"leases"}, Verbs: []string{"get", "update"}}, {APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}, Verbs: []string{"create"}}}})
	for i := 0; i < 2; i++ { // answering again the same way changes nothing
		if out, _, code := canaryline(t, approver, a.ns, "approve", "shop", "--reason", "checked the dashboards"); code != 0 || !strings.Contains(out, "approved by system:serviceaccount:"+a.ns+":release-manager") {
			t.Fatalf("approve #%d: exit %d: %s", i+1, code, out)
		}
	}
	var r stepRun
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the gate did not end within a minute of the approval")
	}
	if r.code != 0 || r.results["VERDICT"] != "healthy" || !strings.Contains(r.results["REASON"], "approved by system:serviceaccount:"+a.ns+":release-manager: checked the dashboards") {
		t.Fatalf("gate: exit %d %v; want healthy, approved by release-manager", r.code, r.results)
	}
	if _, _, code := canaryline(t, approver, a.ns, "reject", "shop"); code != 2 {
		t.Errorf("reject after an approval: exit %d; want 2 (an answer stands)", code)
	}
	if r := a.decide(map[string]string{"DECISION": "promote"}); r.code != 0 {
		t.Fatalf("promote: exit %d", r.code)
	}
	if _, ok := a.lease().Annotations[release.ApprovalAnnotation]; ok {
		t.Error("the approval outlived its release on the Lease")
	}
}

// TestApprovalGateRejectedOrUnansweredRollsBack: a rejection makes the gate's verdict unhealthy (exit 4, naming
// who and why) and promote-or-rollback auto rolls back; an unanswered gate is inconclusive after APPROVAL_TIMEOUT;
// an answer for another release, or from someone who may not update the release record, is refused and recorded
// nowhere.
func TestApprovalGateRejectedOrUnansweredRollsBack(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	if r := a.shift(10, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	if _, errOut, code := canaryline(t, a.kubeconfig, a.ns, "approve", "shop", "--release", "shop-release-9"); code != 2 || !strings.Contains(errOut, "shop-release-1") {
		t.Errorf("approve of another release: exit %d; want 2 naming the release in progress", code)
	}
	viewer := stepsKubeconfigAs(t, a.ns, "viewer", &rbacv1.Role{Rules: []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"},
		Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch"}}}})
	if _, _, code := canaryline(t, viewer, a.ns, "approve", "shop"); code == 0 {
		t.Error("someone who may not update the release record approved it")
	}
	if got := a.answered(); got.Decision != "" {
		t.Fatalf("an answer was recorded: %+v", got)
	}

	if r := a.gate("3s")(); r.code != 6 || r.results["VERDICT"] != "inconclusive" || !strings.Contains(r.results["REASON"], "no one approved or rejected") {
		t.Errorf("unanswered gate: exit %d %v; want 6, inconclusive", r.code, r.results)
	}
	if _, _, code := canaryline(t, a.kubeconfig, a.ns, "reject", "shop", "--reason", "error budget spent"); code != 0 {
		t.Fatalf("reject: exit %d", code)
	}
	r := a.gate("2m")()
	if r.code != 4 || r.results["VERDICT"] != "unhealthy" || !strings.Contains(r.results["REASON"], "rejected by system:serviceaccount:"+a.ns+":pipeline: error budget spent") {
		t.Fatalf("rejected gate: exit %d %v; want 4, unhealthy, naming who and why", r.code, r.results)
	}
	if d := a.decide(map[string]string{"DECISION": "auto", "PIPELINE_STATUS": "Failed", "VERDICT": "unhealthy"}); d.code != 0 || d.results["DECISION"] != "rollback" {
		t.Fatalf("decide: exit %d %v; want rollback", d.code, d.results)
	}
	if a.exists("deployment", "shop-canary") {
		t.Error("the canary outlived the rollback")
	}
}

// TestApprovalAbortRollsBackNow: `canaryline abort APP` rolls the release in progress back with the kubeconfig's
// permissions, as promote-or-rollback does; a second abort finds nothing in progress.
func TestApprovalAbortRollsBackNow(t *testing.T) {
	t.Parallel()
	a := newApp(t, "route", 2)
	before := a.routerState()
	if r := a.shift(30, nil); r.code != 0 {
		t.Fatalf("shift: exit %d", r.code)
	}
	out, _, code := canaryline(t, a.kubeconfig, a.ns, "abort", "shop", "--reason", "pager went off")
	if code != 0 || !strings.Contains(out, "rolled back: aborted by system:serviceaccount:"+a.ns+":pipeline: pager went off") {
		t.Fatalf("abort: exit %d: %s", code, out)
	}
	if after := a.routerState(); after != before || a.exists("deployment", "shop-canary") {
		t.Errorf("after abort: router %s (before %s), canary exists %v", after, before, a.exists("deployment", "shop-canary"))
	}
	if _, _, code := canaryline(t, a.kubeconfig, a.ns, "abort", "shop"); code != 2 {
		t.Errorf("abort with nothing in progress: exit %d; want 2", code)
	}
}
