package traffic

import (
	"fmt"
	"strings"
)

// Traits are what a router kind needs from the release and what it can do. They depend on the kind alone and are
// known before any router is built (the step's params are checked before any client exists), so the release code
// asks them instead of asking which router it has.
type Traits struct {
	// PinsStable says the release must pin the stable Service to the stable ReplicaSet (its pod-template-hash)
	// before any canary or baseline pod exists: the router gives the canary its share through the canary Service,
	// so the stable Service must send its own share to stable pods alone. The replicas router does not pin: the
	// stable Service selecting the pods of every track is how it splits traffic.
	PinsStable bool
	// SizesTracks says the router itself sizes the canary and baseline Deployments from the weight (SetWeights
	// scales them): the release creates them at the size they have (0 at first) instead of CANARY_REPLICAS, and
	// waits for them to roll out after SetWeights instead of before.
	SizesTracks bool
	// Baseline says the router can send a share to a baseline Service besides the canary Service.
	Baseline bool
	// MaxWeight is the largest canary share, in percent, the router can give.
	MaxWeight int32
	// Match says how the router sends test requests to the canary: MatchRoutes (header and cookie rules on the
	// router object), MatchTestRoute (a separate test Route), or "" (it cannot).
	Match string
	// Mirror says the router can copy a share of the stable's requests to the canary.
	Mirror bool

	// overMax and noBaseline refuse a weight over MaxWeight and a baseline the router cannot have, in the words
	// of the step's param check (nil where the router has no such limit).
	overMax, noBaseline *CheckError
}

// Ways a router sends test requests to the canary (Traits.Match).
const (
	MatchRoutes    = "rules"      // header and cookie rules on the router object
	MatchTestRoute = "test Route" // a separate Route to the canary Service, on a host of its own
)

// kindTraits are the traits of every router kind.
var kindTraits = map[string]Traits{
	KindRoute:     {PinsStable: true, Baseline: true, MaxWeight: 100, Match: MatchTestRoute},
	KindHTTPRoute: {PinsStable: true, Baseline: true, MaxWeight: 100, Match: MatchRoutes, Mirror: true},
	KindIstio:     {PinsStable: true, Baseline: true, MaxWeight: 100, Match: MatchRoutes, Mirror: true},
	KindNginx: {PinsStable: true, MaxWeight: 100, Match: MatchRoutes, noBaseline: &CheckError{Param: "BASELINE",
		Msg: "the nginx router cannot route to a baseline", Fix: "NGINX Ingress allows one canary per host: use another router, or BASELINE=false"}},
	KindReplicas: {SizesTracks: true, Baseline: true, MaxWeight: 99, overMax: &CheckError{Param: "WEIGHT",
		Msg: "100% cannot be reached by replica ratio", Fix: "the replicas router never scales the stable Deployment; use promote-or-rollback to make the canary stable"}},
}

// TraitsOf returns the traits of the router kind; an unknown kind is an *UnknownKindError.
func TraitsOf(kind string) (Traits, error) {
	t, ok := kindTraits[kind]
	if !ok {
		return Traits{}, &UnknownKindError{Kind: kind}
	}
	return t, nil
}

// CheckRelease refuses, as a *CheckError that names the param and the fix, a release the router cannot carry out:
// a canary weight (percent) over MaxWeight, or a baseline the router cannot have. It returns nil for one it can.
func (t Traits) CheckRelease(weight int32, baseline bool) error {
	switch {
	case weight > t.MaxWeight:
		return refusal(t.overMax, &CheckError{Param: "WEIGHT", Msg: fmt.Sprintf("%d%% is more than the router can give", weight),
			Fix: fmt.Sprintf("give at most %d", t.MaxWeight)})
	case baseline && !t.Baseline:
		return refusal(t.noBaseline, &CheckError{Param: "BASELINE", Msg: "the router cannot route to a baseline", Fix: "use another router, or BASELINE=false"})
	}
	return nil
}

// refusal is a copy of the table's words ce, or def where the table has none.
func refusal(ce, def *CheckError) error {
	if ce == nil {
		return def
	}
	c := *ce
	return &c
}

// mirrorKinds names the router kinds that can mirror, for messages.
func mirrorKinds() string {
	var out []string
	for _, k := range Kinds {
		if kindTraits[k].Mirror {
			out = append(out, k)
		}
	}
	return strings.Join(out, " and ")
}

// CheckRouting refuses, as a *CheckError naming MATCH, MIRROR or TEST_HOST and the fix, routing beside the weights
// that the router kind cannot carry out. It returns nil for routing it can.
func (t Traits) CheckRouting(kind string, rt Routing) error {
	switch {
	case rt.Mirror > 0 && !t.Mirror:
		return &CheckError{Param: "MIRROR", Msg: fmt.Sprintf("the %s router cannot mirror requests", kind),
			Fix: fmt.Sprintf("leave MIRROR at 0, or release through the %s router", mirrorKinds())}
	case len(rt.Match) > 0 && t.Match == "":
		return &CheckError{Param: "MATCH", Msg: fmt.Sprintf("the %s router has no router object to match requests on", kind),
			Fix: "leave MATCH empty, or release through the route, httproute, istio or nginx router"}
	case rt.TestHost != "" && t.Match != MatchTestRoute:
		return &CheckError{Param: "TEST_HOST", Msg: fmt.Sprintf("the %s router makes no test Route", kind),
			Fix: "leave TEST_HOST empty: it is the host of the route router's test Route; use MATCH on this router"}
	case kind == KindNginx:
		return nginxCheckMatch(rt.Match)
	}
	return nil
}

// nginxCheckMatch refuses MATCH rules the NGINX Ingress canary annotations cannot express: at most one header
// rule (canary-by-header) and one cookie rule (canary-by-cookie), whose value must be "always".
func nginxCheckMatch(rules []MatchRule) error {
	seen := map[string]bool{}
	for _, m := range rules {
		if seen[m.Kind] {
			return &CheckError{Param: "MATCH", Msg: fmt.Sprintf("has more than one %s rule", m.Kind),
				Fix: "the nginx router takes at most one header rule and one cookie rule (canary-by-header, canary-by-cookie)"}
		}
		seen[m.Kind] = true
		if m.Kind == MatchCookie && m.Value != "always" {
			return &CheckError{Param: "MATCH", Msg: fmt.Sprintf("%q: NGINX sends a request to the canary by cookie only when its value is \"always\"", m.String()),
				Fix: fmt.Sprintf("write \"cookie %s=always\", or use a header rule", m.Name)}
		}
	}
	return nil
}
