package traffic

// Helpers shared by the routers: which of the release's Services a backend is, the checks and messages every
// router gives, and the release annotations on router objects.

import (
	"errors"
	"fmt"
	"maps"
)

// backendRole is which of a release's Services a backend is.
type backendRole int

const (
	backendOther backendRole = iota
	backendStable
	backendCanary
	backendBaseline
)

func (r backendRole) String() string {
	return [...]string{"another backend", "the stable Service", "the canary Service", "the baseline Service"}[r]
}

// roleOfService says which of the release's Services svc is.
func roleOfService(svc string, b Backends) backendRole {
	switch {
	case svc == "":
		return backendOther
	case svc == b.Stable:
		return backendStable
	case svc == b.Canary:
		return backendCanary
	case svc == b.Baseline:
		return backendBaseline
	}
	return backendOther
}

// refIndexes are the positions of the stable, canary and baseline backends in one list (-1: absent).
type refIndexes struct{ stable, canary, baseline int }

// set records backend j as role; it fails when the role was already seen.
func (x *refIndexes) set(role backendRole, j int) error {
	p := map[backendRole]*int{backendStable: &x.stable, backendCanary: &x.canary, backendBaseline: &x.baseline}[role]
	if p == nil {
		return nil
	}
	if *p >= 0 {
		return fmt.Errorf("%s", role)
	}
	*p = j
	return nil
}

// unmarkedBackend is a rule (or route) of a router object that carries no canaryline mark but already sends
// traffic to a Service named like the release's canary or baseline: someone else's backend, never the release's.
func unmarkedBackend(where string, idx refIndexes, b Backends) error {
	svc, param := b.Canary, "CANARY_NAME"
	if idx.canary < 0 {
		svc, param = b.Baseline, "BASELINE_NAME"
	}
	return &CheckError{Param: param, Msg: fmt.Sprintf("%s already sends traffic to Service %s, and no canaryline release set it: it is not the release's", where, svc),
		Fix: fmt.Sprintf("give the release's Services other names with %s, or remove that backend before the release", param)}
}

// readBackError is a router object that no longer has a shape the release can use when it is read back after
// the update. It is no CheckError: the release did change the object.
func readBackError(what string, err error) error {
	var ce *CheckError
	if errors.As(err, &ce) {
		return fmt.Errorf("read back %s: it changed under the release: %s", what, ce.Msg)
	}
	return fmt.Errorf("read back %s: %w", what, err)
}

// weightsFit checks that w can be given to b: shares in 0..100 that add up to at most 100, and a baseline share
// only with a baseline Service.
func weightsFit(b Backends, w Weights) error {
	if w.Canary < 0 || w.Baseline < 0 || w.Stable() < 0 {
		return fmt.Errorf("weights %s: shares must be 0 to 100 percent and add up to at most 100", w)
	}
	if w.Baseline > 0 && b.Baseline == "" {
		return fmt.Errorf("weights %s: the release has no baseline Service", w)
	}
	return nil
}

// splitDetail describes a split for the log: "HTTPRoute shop: stable=90 canary=10 baseline=5".
func splitDetail(what string, stable, canary, baseline int32, withBaseline bool) string {
	s := fmt.Sprintf("stable=%d canary=%d", stable, canary)
	if withBaseline {
		s += fmt.Sprintf(" baseline=%d", baseline)
	}
	if what == "" {
		return s
	}
	return what + ": " + s
}

// annotationsWithRelease returns cur with the release annotations set (a new map).
func annotationsWithRelease(cur, release map[string]string) map[string]string {
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, release)
	if len(out) == 0 {
		return nil
	}
	return out
}

// annotationsBeforeRelease returns the release annotations' keys that cur already has, with their values.
func annotationsBeforeRelease(cur, release map[string]string) map[string]string {
	out := map[string]string{}
	for k := range release {
		if v, ok := cur[k]; ok {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// annotationsAfterRestore returns cur with the release annotations of b removed again, and those the object had
// before the release (before) put back (a new map; nil when empty). The shared keys a release recorded before
// used are removed too when they carry b's release, and only then: another application's release may hold them.
func annotationsAfterRestore(cur map[string]string, b Backends, before map[string]string) map[string]string {
	out := maps.Clone(cur)
	for k := range b.Annotations {
		delete(out, k)
	}
	if id := out[ReleaseAnnotation]; id != "" && id == b.release() {
		for _, k := range legacyAnnotations {
			delete(out, k)
		}
	}
	for k, v := range before {
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
