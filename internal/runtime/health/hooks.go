package health

import (
	"context"
	"fmt"
)

// needsHashes says whether a webhook or job check needs the versions' pod-template hashes (the webhooks' context,
// the jobs' analysis).
func (c *Config) needsHashes() bool { return len(c.webhooks) > 0 || len(c.jobs) > 0 }

// prepareChecks builds what the webhook and job checks need before the lock is renewed: the webhooks' client, and
// the jobs' templates, read and checked.
func (v *verification) prepareChecks(ctx context.Context) error {
	var err error
	if len(v.cfg.webhooks) > 0 {
		if v.webhookClient, err = newWebhookClient(v.cfg); err != nil {
			return err
		}
	}
	if len(v.cfg.jobs) > 0 {
		return loadJobTemplates(ctx, v.d.Kube, v.ns, v.cfg.jobs)
	}
	return nil
}

// canaryPodHash is the canary pods' hash: from its ReplicaSet, else as the release recorded it.
func (v *verification) canaryPodHash() string {
	if v.res.tracks.CanaryHash != "" {
		return v.res.tracks.CanaryHash
	}
	return v.canaryHash
}

// prepareJobs makes the job checks of this analysis (the release, the canary's weight and hash) and refuses, before
// any Job is created, a Job of their names that is not this analysis's.
func (v *verification) prepareJobs(ctx context.Context) error {
	cfg := v.cfg
	for _, spec := range cfg.jobs {
		identity := fmt.Sprintf("%s/%s release=%s weight=%d canary=%s check=%s", v.ns, cfg.App, cfg.ReleaseID, v.weight, v.canaryPodHash(), spec.Name)
		j := newJobCheck(v.d.Kube, v.ns, cfg.App, cfg.ReleaseID, spec, identity)
		if err := j.checkClash(ctx); err != nil {
			return err
		}
		v.jobs = append(v.jobs, j)
	}
	return nil
}

// webhookChecks are the checks of WEBHOOKS, each sent the release's context.
func (v *verification) webhookChecks() []Check {
	cfg, t := v.cfg, v.res.tracks
	wc := WebhookContext{Namespace: v.ns, App: cfg.App, Release: cfg.ReleaseID,
		Canary: Side{Deployment: cfg.CanaryDeployment, Hash: v.canaryPodHash()}, Stable: Side{Deployment: cfg.App, Hash: t.StableHash}}
	if t.BaselineHash != "" {
		wc.Baseline = &Side{Deployment: t.BaselineDeployment, Hash: t.BaselineHash}
	}
	if cfg.ReleaseID != "" {
		w := v.weight
		wc.Weight = &w
	}
	var checks []Check
	for _, w := range cfg.webhooks {
		c := wc
		c.Check = w.Name
		checks = append(checks, &webhookCheck{w: w, client: v.webhookClient, context: c})
	}
	return checks
}
