package traffic

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Every kind has traits, and the words to refuse what it cannot do: the step's param check says them.
func TestTraits(t *testing.T) {
	t.Parallel()
	for _, k := range Kinds {
		tr, err := TraitsOf(k)
		if err != nil {
			t.Fatalf("TraitsOf(%s): %v", k, err)
		}
		if tr.MaxWeight < 1 || tr.MaxWeight > 100 {
			t.Errorf("%s: MaxWeight %d", k, tr.MaxWeight)
		}
		if (tr.overMax != nil) != (tr.MaxWeight < 100) || (tr.noBaseline != nil) != !tr.Baseline {
			t.Errorf("%s: the refusals do not match the traits: %+v", k, tr)
		}
		if err := tr.CheckRelease(tr.MaxWeight, tr.Baseline); err != nil {
			t.Errorf("%s: CheckRelease(%d, %v) = %v", k, tr.MaxWeight, tr.Baseline, err)
		}
	}
	var unknown *UnknownKindError
	if _, err := TraitsOf("traefik"); !errors.As(err, &unknown) || unknown.Kind != "traefik" {
		t.Errorf("TraitsOf(traefik) = %v; want an UnknownKindError", err)
	}
}

func TestTraitsOfKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind string
		want Traits
	}{
		{KindRoute, Traits{PinsStable: true, Baseline: true, MaxWeight: 100, Match: MatchTestRoute}},
		{KindHTTPRoute, Traits{PinsStable: true, Baseline: true, MaxWeight: 100, Match: MatchRoutes, Mirror: true}},
		{KindIstio, Traits{PinsStable: true, Baseline: true, MaxWeight: 100, Match: MatchRoutes, Mirror: true}},
		{KindNginx, Traits{PinsStable: true, MaxWeight: 100, Match: MatchRoutes}},
		{KindReplicas, Traits{SizesTracks: true, Baseline: true, MaxWeight: 99}},
	} {
		got, _ := TraitsOf(tc.kind)
		got.overMax, got.noBaseline = nil, nil
		if got != tc.want {
			t.Errorf("TraitsOf(%s) = %+v; want %+v", tc.kind, got, tc.want)
		}
	}
}

// CheckRelease refuses in the words of shift-canary's params: the param, what cannot be done and the fix.
func TestTraitsCheckRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind     string
		weight   int32
		baseline bool
		want     *CheckError
	}{
		{KindReplicas, 100, false, &CheckError{Param: "WEIGHT", Msg: "100% cannot be reached by replica ratio",
			Fix: "the replicas router never scales the stable Deployment; use promote-or-rollback to make the canary stable"}},
		{KindReplicas, 99, true, nil},
		{KindNginx, 10, true, &CheckError{Param: "BASELINE", Msg: "the nginx router cannot route to a baseline",
			Fix: "NGINX Ingress allows one canary per host: use another router, or BASELINE=false"}},
		{KindNginx, 100, false, nil},
		{KindRoute, 100, true, nil},
		{KindHTTPRoute, 50, true, nil},
		{KindIstio, 0, true, nil},
	} {
		tr, _ := TraitsOf(tc.kind)
		err := tr.CheckRelease(tc.weight, tc.baseline)
		var got *CheckError
		if err != nil && !errors.As(err, &got) {
			t.Errorf("%s: CheckRelease(%d, %v) = %v; want a CheckError", tc.kind, tc.weight, tc.baseline, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: CheckRelease(%d, %v) (-want +got):\n%s", tc.kind, tc.weight, tc.baseline, diff)
		}
	}
	// The words are the table's, not shared: a refusal changed by its caller does not change the next one.
	tr, _ := TraitsOf(KindReplicas)
	var ce *CheckError
	if errors.As(tr.CheckRelease(100, false), &ce) {
		ce.Msg = "changed"
	}
	if errors.As(tr.CheckRelease(100, false), &ce) && ce.Msg == "changed" {
		t.Error("CheckRelease returned the table's own CheckError")
	}
}
