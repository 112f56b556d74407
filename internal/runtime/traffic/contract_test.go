package traffic

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

// The contract every router keeps, run against each kind (routerTestFixtures). What is true of one kind alone
// stays in its own test file.

// routerFixture is one router kind for the contract suite: how to make it on fake clients, and what it must do.
type routerFixture struct {
	kind string
	// setup makes the router on fake clients holding the router object as a release of shop (routerTestBackends)
	// finds it.
	setup func(t *testing.T, o fixtureOptions) *routerEnv
	// steps are weights the kind can give exactly, with the Applied SetWeights must return for them.
	steps []contractStep
	// approx is how far the effective shares may be from the steps' (the OpenShift router's arithmetic).
	approx float64
	// missing is what Check says of a router object that does not exist ("": a plain error, not a CheckError).
	missing string
	// foreign is what Check says of a router object already split to shop-canary without the release's mark
	// ("": the router marks nothing, and the application name's length does not matter to it either).
	foreign string
	// checksWeights says SetWeights refuses shares out of range, and a baseline share without a baseline Service.
	checksWeights bool
	// snapshots says Restore reads its snapshot and refuses garbage; kindedSnapshot, another router's too.
	snapshots, kindedSnapshot bool
	// quietRestore says Restore writes nothing when there is nothing to put back.
	quietRestore bool
	// restoresDeleted says Restore of a router object deleted since is done, not an error.
	restoresDeleted bool
	// setConflict and restoreConflict are the verbs on the router object's resource whose conflicts SetWeights
	// and Restore retry ("": not tested).
	setConflict, restoreConflict string
	// apiErrors are API failures and how the router names them.
	apiErrors []apiErrorCase
}

// fixtureOptions say how the router object is when the release finds it.
type fixtureOptions struct {
	missing bool              // there is none
	split   map[string]string // non-nil: it already sends traffic to shop-canary, with these annotations
}

// contractStep is one weight and what SetWeights returns for it.
type contractStep struct {
	baseline bool // the release has a baseline Service
	w        Weights
	want     Applied
}

// apiErrorCase is an API failure on verb (after a first SetWeights when prepared) and what op then says.
type apiErrorCase struct {
	name, verb string
	prepared   bool
	op         string // check, snapshot, set or restore
	verbObject string // the start of the error: "get HTTPRoute apps/shop"
}

// routerEnv is one router on fake clients.
type routerEnv struct {
	r        Router
	fakes    []*k8stesting.Fake // every fake the router uses, to count writes
	fake     *k8stesting.Fake   // the fake that holds the router object
	resource string             // the router object's resource
	// state is the router's objects as stored now, without what the API server sets: what Restore puts back.
	state func(t *testing.T) any
	// held reads the weights the objects hold now, apart from the router's own code.
	held func(t *testing.T, b Backends) Weights
	// want is the state after SetWeights(w) (nil: only held is checked).
	want func(t *testing.T, b Backends, w Weights) any
}

// writes counts the write verbs that reached the fakes.
func (e *routerEnv) writes() int {
	n := 0
	for _, f := range e.fakes {
		n += routerTestWrites(f)
	}
	return n
}

// routerTestFixtures are the fixtures of every router kind.
func routerTestFixtures() []routerFixture {
	return []routerFixture{routeFixture(), httpRouteFixture(), istioFixture(), nginxFixture(), replicasFixture()}
}

func TestRouterContract(t *testing.T) {
	t.Parallel()
	fixtures := map[string]bool{}
	for _, f := range routerTestFixtures() {
		fixtures[f.kind] = true
		t.Run(f.kind, func(t *testing.T) {
			t.Parallel()
			for _, c := range []struct {
				name string
				run  func(*testing.T, routerFixture)
			}{
				{"Kind", contractKind},
				{"Check is read-only", contractCheckReadOnly},
				{"Check of a missing object", contractCheckMissing},
				{"marks", contractMarks},
				{"application name too long for its keys", contractNameTooLong},
				{"baseline per Traits", contractBaseline},
				{"SetWeights and Restore", contractSetWeightsAndRestore},
				{"Restore of nothing", contractRestoreOfNothing},
				{"refusals", contractRefusals},
				{"conflicts", contractConflicts},
				{"API errors", contractAPIErrors},
			} {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, f)
				})
			}
		})
	}
	for _, k := range Kinds {
		if !fixtures[k] {
			t.Errorf("no contract fixture for router kind %s", k)
		}
	}
}

func contractKind(t *testing.T, f routerFixture) {
	e := f.setup(t, fixtureOptions{})
	if got := e.r.Kind(); got != f.kind {
		t.Errorf("Kind() = %q; want %q", got, f.kind)
	}
}

// Check passes on the object as the release finds it, with a baseline when the kind has one, and writes nothing.
func contractCheckReadOnly(t *testing.T, f routerFixture) {
	tr, err := TraitsOf(f.kind)
	if err != nil {
		t.Fatal(err)
	}
	for _, baseline := range []bool{false, tr.Baseline} {
		e := f.setup(t, fixtureOptions{})
		if err := e.r.Check(context.Background(), routerTestBackends(baseline)); err != nil {
			t.Errorf("Check (baseline %v): %v", baseline, err)
		}
		if n := e.writes(); n != 0 {
			t.Errorf("Check made %d writes; want none", n)
		}
	}
}

func contractCheckMissing(t *testing.T, f routerFixture) {
	e := f.setup(t, fixtureOptions{missing: true})
	err := e.r.Check(context.Background(), routerTestBackends(false))
	if f.missing == "" {
		var ce *CheckError
		if err == nil || errors.As(err, &ce) {
			t.Errorf("Check = %v; want a plain error", err)
		}
	} else {
		routerTestWantCheckError(t, err, f.missing)
	}
	if n := e.writes(); n != 0 {
		t.Errorf("Check made %d writes; want none", n)
	}
}

// An object already split to shop-canary is the release's when it carries the release's mark (its application's
// key, or the shared key of a release recorded before), and refused before any write when it does not.
func contractMarks(t *testing.T, f routerFixture) {
	if f.foreign == "" {
		t.Skip("the router marks nothing")
	}
	for _, tc := range []struct {
		anns map[string]string
		ours bool
	}{
		{map[string]string{"shop.canaryline.dev/release": "r-7"}, true},
		{map[string]string{"canaryline.dev/release": "r-7"}, true},
		{map[string]string{"cart.canaryline.dev/release": "r-7"}, false},
		{map[string]string{"team": "payments"}, false},
	} {
		e := f.setup(t, fixtureOptions{split: tc.anns})
		err := e.r.Check(context.Background(), routerTestBackends(false))
		if tc.ours && err != nil {
			t.Errorf("Check of an object split by the release (%v): %v", tc.anns, err)
		}
		if !tc.ours {
			routerTestWantCheckError(t, err, f.foreign)
		}
		if n := e.writes(); n != 0 {
			t.Errorf("Check made %d writes; want none", n)
		}
	}
}

// An application name too long to prefix annotation keys is refused before any write.
func contractNameTooLong(t *testing.T, f routerFixture) {
	if f.foreign == "" {
		t.Skip("the router marks nothing")
	}
	app := strings.Repeat("a", 239)
	b := routerTestBackends(false)
	b.StableDeployment = app
	b.Annotations = map[string]string{AppAnnotation(app, ReleaseAnnotation): "r-7"}
	e := f.setup(t, fixtureOptions{})
	err := e.r.Check(context.Background(), b)
	routerTestWantCheckError(t, err, "at most 238 characters")
	var ce *CheckError
	if errors.As(err, &ce) && ce.Param != "APP" {
		t.Errorf("param %q; want APP", ce.Param)
	}
	if n := e.writes(); n != 0 {
		t.Errorf("Check made %d writes", n)
	}
	b.StableDeployment = app[:238]
	b.Annotations = map[string]string{AppAnnotation(app[:238], ReleaseAnnotation): "r-7"}
	if err := e.r.Check(context.Background(), b); err != nil {
		t.Errorf("Check with a 238-character name: %v", err)
	}
}

// A kind without a baseline refuses one in Check and in SetWeights, before any write; a kind with one gives it its
// share (contractSetWeightsAndRestore).
func contractBaseline(t *testing.T, f routerFixture) {
	tr, _ := TraitsOf(f.kind)
	withBaseline := false
	for _, s := range f.steps {
		withBaseline = withBaseline || s.baseline
	}
	if tr.Baseline {
		if !withBaseline {
			t.Errorf("the fixture has no step with a baseline; the kind has one")
		}
		return
	}
	if withBaseline {
		t.Errorf("the fixture has a step with a baseline; the kind has none")
	}
	ctx := context.Background()
	e := f.setup(t, fixtureOptions{})
	var ce *CheckError
	if err := e.r.Check(ctx, routerTestBackends(true)); !errors.As(err, &ce) {
		t.Errorf("Check with a baseline = %v; want a CheckError", err)
	}
	if _, err := e.r.SetWeights(ctx, routerTestBackends(true), Weights{Canary: 10}); err == nil {
		t.Error("SetWeights with a baseline Service = nil; want an error")
	}
	if _, err := e.r.SetWeights(ctx, routerTestBackends(false), Weights{Baseline: 5}); err == nil {
		t.Error("SetWeights with a baseline share = nil; want an error")
	}
	if n := e.writes(); n != 0 {
		t.Errorf("a refused baseline made %d writes", n)
	}
}

// SetWeights gives each step's weights, says so, and reads back what the objects hold; the same weights a second
// time leave the objects as they were; Check passes during the release; Restore puts the objects back as they
// were before it, twice in a row.
func contractSetWeightsAndRestore(t *testing.T, f routerFixture) {
	for _, s := range f.steps {
		name := s.w.String()
		if s.baseline {
			name += " with a baseline Service"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := routerTestBackends(s.baseline)
			e := f.setup(t, fixtureOptions{})
			orig := e.state(t)
			snap, err := e.r.Snapshot(ctx, b)
			if err != nil {
				t.Fatalf("Snapshot: %v", err)
			}
			// The weights, another step, and the weights again: the second write starts from the split object.
			var first any
			for n, w := range []Weights{s.w, {Canary: 1, Baseline: min(s.w.Baseline, 1)}, s.w} {
				got, err := e.r.SetWeights(ctx, b, w)
				if err != nil {
					t.Fatalf("SetWeights(%s): %v", w, err)
				}
				if n == 1 {
					continue
				}
				contractApplied(t, f, e, b, s, got)
				if n == 0 {
					first = e.state(t)
				} else if diff := cmp.Diff(first, e.state(t)); diff != "" {
					t.Errorf("the same weights again changed the objects (-first +again):\n%s", diff)
				}
			}
			if err := e.r.Check(ctx, b); err != nil {
				t.Errorf("Check during the release: %v", err)
			}
			contractRestoreTwice(t, f, e, b, snap, orig)
		})
	}
}

// contractApplied checks what SetWeights returned for step s, and what the objects hold.
func contractApplied(t *testing.T, f routerFixture, e *routerEnv, b Backends, s contractStep, got Applied) {
	t.Helper()
	approx := cmp.Comparer(func(x, y float64) bool { return math.Abs(x-y) <= f.approx })
	if diff := cmp.Diff(s.want, got, approx); diff != "" {
		t.Errorf("Applied (-want +got):\n%s", diff)
	}
	held := e.held(t, b)
	if held != got.Stored {
		t.Errorf("the objects hold %s; SetWeights read back %s", held, got.Stored)
	}
	if held != s.w {
		t.Errorf("the objects hold %s; want %s", held, s.w)
	}
	if e.want != nil {
		if diff := cmp.Diff(e.want(t, b, s.w), e.state(t)); diff != "" {
			t.Errorf("stored objects (-want +got):\n%s", diff)
		}
	}
}

// contractRestoreTwice restores twice, checking the objects are orig each time, and a third time, which writes
// nothing when the kind restores quietly.
func contractRestoreTwice(t *testing.T, f routerFixture, e *routerEnv, b Backends, snap string, orig any) {
	t.Helper()
	ctx := context.Background()
	for i := range 2 {
		if err := e.r.Restore(ctx, b, snap); err != nil {
			t.Fatalf("Restore #%d: %v", i+1, err)
		}
		if diff := cmp.Diff(orig, e.state(t)); diff != "" {
			t.Errorf("objects after Restore #%d (-want +got):\n%s", i+1, diff)
		}
	}
	writes := e.writes()
	if err := e.r.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore again: %v", err)
	}
	if n := e.writes() - writes; f.quietRestore && n != 0 {
		t.Errorf("Restore of restored objects made %d writes; want none", n)
	}
}

// Restore after a Snapshot and no change writes nothing (quiet kinds); Restore of an object deleted since is
// done.
func contractRestoreOfNothing(t *testing.T, f routerFixture) {
	ctx := context.Background()
	b := routerTestBackends(false)
	e := f.setup(t, fixtureOptions{})
	snap, err := e.r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if n := e.writes(); f.quietRestore && n != 0 {
		t.Errorf("Restore of an unchanged object made %d writes", n)
	}
	if !f.restoresDeleted {
		return
	}
	if err := f.setup(t, fixtureOptions{missing: true}).r.Restore(ctx, b, snap); err != nil {
		t.Errorf("Restore of a deleted object: %v", err)
	}
}

// Garbage snapshots, another router's, and weights out of range are refused.
func contractRefusals(t *testing.T, f routerFixture) {
	ctx := context.Background()
	b := routerTestBackends(false)
	e := f.setup(t, fixtureOptions{})
	var bad []string
	if f.snapshots {
		bad = append(bad, "", "{")
	}
	if f.kindedSnapshot {
		other := `{"kind":"istio"}`
		if f.kind == KindIstio {
			other = `{"kind":"httproute"}`
		}
		bad = append(bad, other)
	}
	for _, snap := range bad {
		if err := e.r.Restore(ctx, b, snap); err == nil {
			t.Errorf("Restore(%q) = nil; want an error", snap)
		}
	}
	tr, _ := TraitsOf(f.kind)
	var ws []Weights
	if f.checksWeights {
		ws = append(ws, Weights{Canary: -1}, Weights{Canary: 101}, Weights{Canary: 60, Baseline: 50}, Weights{Baseline: 5})
	}
	if tr.MaxWeight < 100 {
		ws = append(ws, Weights{Canary: tr.MaxWeight + 1})
	}
	for _, w := range ws {
		if _, err := e.r.SetWeights(ctx, b, w); err == nil {
			t.Errorf("SetWeights(%+v) = nil; want an error", w)
		}
	}
	if n := e.writes(); n != 0 {
		t.Errorf("refusals made %d writes", n)
	}
}

// A conflict on the router object's update is retried, in SetWeights and in Restore, with and without a
// baseline.
func contractConflicts(t *testing.T, f routerFixture) {
	if f.setConflict == "" {
		t.Skip("no conflicts to retry")
	}
	tr, _ := TraitsOf(f.kind)
	for _, baseline := range slices.Compact([]bool{false, tr.Baseline}) {
		contractConflict(t, f, baseline)
	}
}

// contractConflict is contractConflicts for a release with or without a baseline.
func contractConflict(t *testing.T, f routerFixture, baseline bool) {
	ctx := context.Background()
	b := routerTestBackends(baseline)
	var target Weights // the last of the fixture's steps that moves traffic, with or without a baseline
	for _, s := range f.steps {
		if s.baseline == baseline && s.w.Canary > 0 {
			target = s.w
		}
	}
	e := f.setup(t, fixtureOptions{})
	orig := e.state(t)
	snap, err := e.r.Snapshot(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.SetWeights(ctx, b, Weights{Canary: 5, Baseline: min(target.Baseline, 5)}); err != nil {
		t.Fatal(err)
	}
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: e.resource}, "shop", nil)
	routerTestFailOnce(e.fake, f.setConflict, e.resource, conflict)
	got, err := e.r.SetWeights(ctx, b, target)
	if err != nil {
		t.Fatalf("SetWeights after a conflict: %v", err)
	}
	if held := e.held(t, b); held != got.Stored || held != target {
		t.Errorf("the objects hold %s after a conflict; SetWeights read back %s; want %s", held, got.Stored, target)
	}
	if f.restoreConflict == "" {
		return
	}
	routerTestFailOnce(e.fake, f.restoreConflict, e.resource, conflict)
	if err := e.r.Restore(ctx, b, snap); err != nil {
		t.Fatalf("Restore after a conflict: %v", err)
	}
	if diff := cmp.Diff(orig, e.state(t)); diff != "" {
		t.Errorf("objects after Restore (-want +got):\n%s", diff)
	}
}

// An API failure is returned wrapped, naming what failed, and is no CheckError.
func contractAPIErrors(t *testing.T, f routerFixture) {
	ctx := context.Background()
	b := routerTestBackends(false)
	for _, tc := range f.apiErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := f.setup(t, fixtureOptions{})
			snap, err := e.r.Snapshot(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			if tc.prepared {
				if _, err := e.r.SetWeights(ctx, b, Weights{Canary: 5}); err != nil {
					t.Fatal(err)
				}
			}
			e.fake.PrependReactor(tc.verb, e.resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, routerTestAPIError
			})
			routerTestWantAPIError(t, contractRun(ctx, e.r, b, tc.op, snap), tc.verbObject)
		})
	}
}

// contractRun runs one of the router's methods by name.
func contractRun(ctx context.Context, r Router, b Backends, op, snap string) error {
	var err error
	switch op {
	case "check":
		err = r.Check(ctx, b)
	case "snapshot":
		_, err = r.Snapshot(ctx, b)
	case "set":
		_, err = r.SetWeights(ctx, b, Weights{Canary: 10})
	case "restore":
		err = r.Restore(ctx, b, snap)
	}
	return err
}

// routerTestCheckCase is a router object given to Check, and what Check must say of it.
type routerTestCheckCase struct {
	name     string
	manifest string           // the object (unstructured kinds)
	objs     []runtime.Object // the objects (typed kinds)
	baseline bool
	want     string // "" for no error; else a CheckError that says this
}

// routerTestCheckCases runs Check on each case's object (made by setup), which must say the case's want and
// write nothing.
func routerTestCheckCases(t *testing.T, cases []routerTestCheckCase, setup func(t *testing.T, tc routerTestCheckCase) (Router, *k8stesting.Fake)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, fake := setup(t, tc)
			err := r.Check(context.Background(), routerTestBackends(tc.baseline))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
			} else {
				routerTestWantCheckError(t, err, tc.want)
			}
			if n := routerTestWrites(fake); n != 0 {
				t.Errorf("Check made %d writes; want none", n)
			}
		})
	}
}
