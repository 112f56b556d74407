package cli

// commands is the command table, in the order of the overview. The usage texts are generated from it.
func commands() []*command {
	return []*command{
		{name: "cluster", sub: "build", env: true, setup: clusterBuild,
			summary: "build (or find cached) the local control plane's binaries",
			description: "Build (or find cached) the control-plane binaries and CRDs, showing progress; with --real-node also " +
				"a real node's kubelet, containerd, runc and CNI plugins; with --tekton also Tekton's and Triggers' programs " +
				"and images; with --tools also tkn and a Prometheus with Kubernetes service discovery."},
		{name: "cluster", sub: "up", env: true, setup: clusterUp,
			summary: "start the embedded control plane",
			description: "Start the embedded control plane (built from the Go module proxy on first use): in the foreground " +
				"until Ctrl-C, or in the background with --detach; with --real-node also a real node beside the KWOK nodes " +
				"(needs root); with --tekton (implies --real-node) also Tekton Pipelines and Triggers running on it. It " +
				"prints the cluster's KUBECONFIG as a shell export."},
		{name: "cluster", sub: "down", env: true, setup: clusterDown,
			summary: "stop a cluster started with --detach and remove its directory",
			description: "Stop the cluster that `canaryline cluster up --detach` started in DIR (its supervisor stops " +
				"every component) and remove its directory."},
		{name: "cluster", sub: "status", env: true, setup: clusterStatus,
			summary: "say whether a cluster runs in DIR and print its KUBECONFIG",
			description: "Say whether a cluster runs in DIR and print its KUBECONFIG as a shell export; exit 1 when none " +
				"runs there."},
		{name: "demo", env: true, setup: demoCmd,
			summary: "the demo: releases of sample-app on the embedded control plane (or on a cluster)",
			description: "The demo on the embedded control plane (or on --kubeconfig's cluster): build sample-app with " +
				"its BuildConfig and deploy it by digest as the stable version behind a Route, then release new versions. " +
				"With --real-node (root) its versions are real images running as pods on the real node; on the embedded " +
				"control plane (as root) each release is a PipelineRun on the real Tekton controller, its steps pods on " +
				"the real node (--no-tekton: canaryline run instead)."},
		{name: "bench", env: true, setup: benchCmd,
			summary: "measure sizes, start-up, API requests and release times; print one table",
			description: "Measure on the embedded control plane: binary and image sizes, cold starts, peak RSS, API " +
				"requests per release, time to rollback, release overhead, releases at once, a real node's and its " +
				"pods' starts and memory (as root), the same release with Argo Rollouts' controller (built from the Go module " +
				"proxy on first use), and the Go benchmarks; print one table with each figure's target."},
		{name: "run", args: "PIPELINE_FILE", setup: runCmd,
			argsMissing: "run: give the Pipeline's file first, e.g. canaryline run pipelines/canary-release.yaml --param app=shop",
			summary:     "run a Pipeline without Tekton: its steps as local processes",
			description: "Run a Pipeline without Tekton: its Tasks' steps as local processes, in Tekton's order and with " +
				"Tekton's substitution (when, finally, $(tasks.status), retries, timeouts). Each workspace is a " +
				"subdirectory of DIR (default: a new one in $TMPDIR), or the DIR bound to it (e.g. --workspace " +
				"dockerconfig=$HOME/.docker); all are kept and printed."},
		{name: "status", args: "APP", setup: statusCmd,
			argsMissing: "status: give the application's name (its stable Deployment)",
			summary:     "an application's release state",
			description: "The application's release state, read-only: stable and canary images, the lock holder, the " +
				"release in progress (weight), and the last release's decision and reason."},
		{name: "approve", args: "APP", setup: approveCmd("approve"),
			argsMissing: "approve: give the application's name (its stable Deployment)",
			summary:     "approve the release of APP that waits at its approval gate",
			description: "Record an approval of the release of APP in progress on its release record (the Lease " +
				"canaryline-APP: who may update it may approve), with the cluster's name for you. verify-health with " +
				"APPROVAL=required (the canary-release-approval-cli Pipeline's last analysis) is waiting for it and " +
				"goes on to promotion. Answering again the same way changes nothing; exit 2 when no release is in progress " +
				"or it was rejected already."},
		{name: "reject", args: "APP", setup: approveCmd("reject"),
			argsMissing: "reject: give the application's name (its stable Deployment)",
			summary:     "reject the release of APP that waits at its approval gate (it is rolled back)",
			description: "Record a rejection of the release of APP in progress on its release record: verify-health's " +
				"gate gives the verdict unhealthy with your name and --reason, and the Pipeline's finally task rolls the " +
				"release back."},
		{name: "abort", args: "APP", setup: abortCmd,
			argsMissing: "abort: give the application's name (its stable Deployment)",
			summary:     "roll the release of APP in progress back now",
			description: "Roll the release of APP in progress back now, with the kubeconfig's permissions, exactly as " +
				"promote-or-rollback DECISION=rollback does (traffic to 0 first, then the canary removed and the router " +
				"restored by content). A Pipeline still running stops at its next step: the release has ended."},
		{name: "plugin", sub: "release", setup: pluginRelease,
			summary: "build the kubectl/oc plugin for every platform and its Krew manifest",
			description: "Build kubectl-canaryline (status, approve, reject and abort, as `kubectl canaryline` or " +
				"`oc canaryline`) for every platform into reproducible archives, and write the Krew manifest " +
				"canaryline.yaml naming each archive under --base-url with its sha256. `kubectl krew install " +
				"--manifest=DIR/canaryline.yaml` installs it from a published release; add --archive=FILE to install " +
				"from a local archive."},
		{name: "generate", sub: "pipelines", setup: generatePipelines,
			summary:     "write pipelines/ from internal/tools/pipelinegen",
			description: "Write pipelines/ from internal/tools/pipelinegen (all variants from one source); with --check only check that it is up to date."},
		{name: "generate", sub: "role", setup: generateRole,
			summary: "print the Role that lets the steps release one application only",
			description: "Print the Role that lets the steps release APP only (tasks/role.yaml, plus the router's " +
				"component for --router httproute|istio|nginx, narrowed to APP's objects), and with --service-account " +
				"its RoleBinding."},
		{name: "catalog", sub: "generate", setup: catalogGenerate,
			summary: "write catalog/ (tektoncd/catalog layout) from tasks/ and pipelines/",
			description: "Generate catalog/ (the tektoncd/catalog layout Artifact Hub indexes) from tasks/ and " +
				"pipelines/: each Task and Pipeline with its step image pinned by digest and the artifacthub.io " +
				"annotations, a README.md and an example run. With --check it changes nothing: it lists the stale, " +
				"missing and extra files and exits 1 when there are any."},
		{name: "bundle", sub: "push", setup: bundlePush,
			summary: "push every Task and Pipeline as a Tekton bundle and print its pinned reference",
			description: "Publish the Tasks and Pipelines of DIR/tasks and DIR/pipelines as one Tekton bundle (an OCI " +
				"image with one layer per resource, at most 20) and print its pinned reference, " +
				"REGISTRY/REPO:TAG@sha256:..., for the bundles resolver. The same files always give the same digest. " +
				"Registry credentials come from the docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json, " +
				"as written by docker login, podman login or oc registry login).\n\n" +
				"Exit codes: 0 pushed; 1 error (unreadable or invalid resources, the push failed); 2 bad usage."},
		{name: "image", setup: imageCmd,
			summary: "build the step image index (amd64, arm64, ppc64le, s390x) as an OCI layout, without a container engine",
			description: "Build the step image (all five steps, one multi-call binary) for each platform, as one OCI " +
				"image index in an OCI layout, without a container engine, and print each image's size."},
	}
}
