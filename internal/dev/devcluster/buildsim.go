package devcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	buildinformers "github.com/openshift/client-go/build/informers/externalversions"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// InternalRegistry is the host of OpenShift's internal image registry, as it appears in image references.
const InternalRegistry = "image-registry.openshift-image-registry.svc:5000"

// Annotations on a BuildConfig (or on one Build) that script what the build simulator does with its builds.
const (
	simPrefix = "buildsim.canaryline.dev/"
	// SimOutcome is Complete (the default), Failed, Error, or Hang (stays Running until cancelled).
	SimOutcome = simPrefix + "outcome"
	// SimReason and SimMessage set status.reason and status.message of a Failed or Error build.
	SimReason  = simPrefix + "reason"
	SimMessage = simPrefix + "message"
	// SimLog replaces the generated log with these lines (newline separated).
	SimLog = simPrefix + "log"
	// SimLogLines adds this many numbered lines to the log.
	SimLogLines = simPrefix + "log-lines"
	// SimFailAfterLines makes the build fail (Failed, or SimOutcome if that is Error) after this many log lines.
	SimFailAfterLines = simPrefix + "fail-after-lines"
	// SimLineInterval is the time between log lines (a Go duration; default 20ms).
	SimLineInterval = simPrefix + "line-interval"
	// SimPendingDelay is the time spent in Pending (default 50ms).
	SimPendingDelay = simPrefix + "pending-delay"
	// SimDigest fixes the image digest; by default it is derived from the namespace, build and commit.
	SimDigest = simPrefix + "digest"
	// SimOmitDigest "true" leaves status.output.to.imageDigest empty (the ImageStreamTag still gets it).
	SimOmitDigest = simPrefix + "omit-digest"
)

// instantiate does what OpenShift's build generator does for POST buildconfigs/{name}/instantiate: bump the
// BuildConfig's status.lastVersion and create Build <bc>-<n> from its spec with the request applied.
func instantiate(ctx context.Context, c buildclient.Interface, ns, name string, req *buildv1.BuildRequest) (*buildv1.Build, error) {
	var bc *buildv1.BuildConfig
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := c.BuildV1().BuildConfigs(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.LastVersion++
		bc, err = c.BuildV1().BuildConfigs(ns).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, err
	}
	b := newBuild(bc, req)
	created, err := c.BuildV1().Builds(ns).Create(ctx, b, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	created.APIVersion, created.Kind = "build.openshift.io/v1", "Build"
	return created, nil
}

func newBuild(bc *buildv1.BuildConfig, req *buildv1.BuildRequest) *buildv1.Build {
	n := bc.Status.LastVersion
	labels, annotations := buildMeta(bc, req)
	spec := *bc.Spec.CommonSpec.DeepCopy()
	if req.Revision != nil {
		spec.Revision = req.Revision.DeepCopy()
	}
	applyStrategyOptions(&spec.Strategy, req)
	b := &buildv1.Build{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", bc.Name, n), Namespace: bc.Namespace, Labels: labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "build.openshift.io/v1", Kind: "BuildConfig",
				Name: bc.Name, UID: bc.UID, Controller: ptr(true)}},
		},
		Spec: buildv1.BuildSpec{CommonSpec: spec, TriggeredBy: append([]buildv1.BuildTriggerCause(nil), req.TriggeredBy...)},
		Status: buildv1.BuildStatus{
			Phase:  buildv1.BuildPhaseNew,
			Config: &corev1.ObjectReference{Kind: "BuildConfig", Namespace: bc.Namespace, Name: bc.Name},
		},
	}
	b.Status.OutputDockerImageReference = outputReference(b)
	return b
}

// buildMeta is the labels and annotations of the next Build of bc: the BuildConfig's labels, the build-config
// and run-policy labels and the build number, then the request's.
func buildMeta(bc *buildv1.BuildConfig, req *buildv1.BuildRequest) (labels, annotations map[string]string) {
	policy := bc.Spec.RunPolicy
	if policy == "" {
		policy = buildv1.BuildRunPolicySerial
	}
	labels = map[string]string{}
	for k, v := range bc.Labels {
		labels[k] = v
	}
	short := bc.Name
	if len(short) > 63 {
		short = short[:63]
	}
	labels[buildv1.BuildConfigLabel] = short
	labels[buildv1.BuildConfigLabelDeprecated] = short
	labels[buildv1.BuildRunPolicyLabel] = string(policy)
	annotations = map[string]string{
		buildv1.BuildConfigAnnotation: bc.Name,
		buildv1.BuildNumberAnnotation: strconv.FormatInt(bc.Status.LastVersion, 10),
	}
	// As OpenShift's build generator: the request's labels and annotations are added, but never replace the
	// ones the build already has.
	for k, v := range req.Labels {
		if _, ok := labels[k]; !ok {
			labels[k] = v
		}
	}
	for k, v := range req.Annotations {
		if _, ok := annotations[k]; !ok {
			annotations[k] = v
		}
	}
	return labels, annotations
}

// applyStrategyOptions applies the request's environment, base image and strategy options to the strategy.
func applyStrategyOptions(st *buildv1.BuildStrategy, req *buildv1.BuildRequest) {
	switch {
	case st.SourceStrategy != nil:
		st.SourceStrategy.Env = mergeEnv(st.SourceStrategy.Env, req.Env)
		if req.From != nil {
			st.SourceStrategy.From = *req.From.DeepCopy()
		}
		if req.SourceStrategyOptions != nil && req.SourceStrategyOptions.Incremental != nil {
			st.SourceStrategy.Incremental = req.SourceStrategyOptions.Incremental
		}
	case st.DockerStrategy != nil:
		st.DockerStrategy.Env = mergeEnv(st.DockerStrategy.Env, req.Env)
		if req.From != nil {
			st.DockerStrategy.From = req.From.DeepCopy()
		}
		if o := req.DockerStrategyOptions; o != nil {
			st.DockerStrategy.BuildArgs = mergeEnv(st.DockerStrategy.BuildArgs, o.BuildArgs)
			if o.NoCache != nil {
				st.DockerStrategy.NoCache = *o.NoCache
			}
		}
	case st.CustomStrategy != nil:
		st.CustomStrategy.Env = mergeEnv(st.CustomStrategy.Env, req.Env)
	}
}

func mergeEnv(base, extra []corev1.EnvVar) []corev1.EnvVar {
	out := append([]corev1.EnvVar(nil), base...)
	for _, e := range extra {
		replaced := false
		for i := range out {
			if out[i].Name == e.Name {
				out[i], replaced = e, true
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

// outputReference is where the build pushes: an ImageStreamTag in the internal registry, or a DockerImage.
func outputReference(b *buildv1.Build) string {
	to := b.Spec.Output.To
	if to == nil {
		return ""
	}
	switch to.Kind {
	case "ImageStreamTag":
		ns := to.Namespace
		if ns == "" {
			ns = b.Namespace
		}
		return InternalRegistry + "/" + ns + "/" + to.Name
	case "DockerImage":
		return to.Name
	}
	return ""
}

func terminal(p buildv1.BuildPhase) bool {
	switch p {
	case buildv1.BuildPhaseComplete, buildv1.BuildPhaseFailed, buildv1.BuildPhaseError, buildv1.BuildPhaseCancelled:
		return true
	}
	return false
}

// buildSimulator stands in for OpenShift's build controller and build pods: it moves each Build from New through
// Pending and Running to a terminal phase, writes its log, and on success records the image digest in the Build
// and in the output ImageStream. What it does is scripted by the Sim* annotations.
type buildSimulator struct {
	builds buildclient.Interface
	images imageclient.Interface
	logs   *buildLogs
	log    io.Writer

	mu      sync.Mutex
	running map[types.UID]chan struct{} // closed when the build is cancelled
}

func (s *buildSimulator) run(ctx context.Context) {
	s.running = map[types.UID]chan struct{}{}
	f := buildinformers.NewSharedInformerFactory(s.builds, 0)
	inf := f.Build().V1().Builds().Informer()
	handle := func(obj any) {
		b, ok := obj.(*buildv1.Build)
		if !ok || terminal(b.Status.Phase) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		cancelled, seen := s.running[b.UID]
		switch {
		case !seen:
			cancelled = make(chan struct{})
			s.running[b.UID] = cancelled
			go s.drive(ctx, b.DeepCopy(), cancelled)
			if b.Status.Cancelled {
				close(cancelled)
			}
		case b.Status.Cancelled:
			select {
			case <-cancelled:
			default:
				close(cancelled)
			}
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	})
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
}

type simScript struct {
	outcome        buildv1.BuildPhase // Complete, Failed, Error; "" = hang
	reason, msg    string
	lines          []string
	failAfter      int
	interval       time.Duration
	pending        time.Duration
	digest         string
	omitDigest     bool
	scriptProblems []string
}

func (s *buildSimulator) script(ctx context.Context, b *buildv1.Build) simScript {
	ann := s.annotations(ctx, b)
	sc := simScript{outcome: buildv1.BuildPhaseComplete, interval: 20 * time.Millisecond, pending: 50 * time.Millisecond, failAfter: -1}
	sc.timing(ann)
	sc.readOutcome(ann)
	sc.readLog(ann, b)
	sc.digest = ann[SimDigest]
	if sc.digest == "" {
		sc.digest = defaultDigest(b)
	}
	sc.omitDigest = ann[SimOmitDigest] == "true"
	return sc
}

// annotations are the Sim* annotations of a build: its BuildConfig's, and the Build's own, which win.
func (s *buildSimulator) annotations(ctx context.Context, b *buildv1.Build) map[string]string {
	ann := map[string]string{}
	if b.Status.Config != nil {
		if bc, err := s.builds.BuildV1().BuildConfigs(b.Namespace).Get(ctx, b.Status.Config.Name, metav1.GetOptions{}); err == nil {
			for k, v := range bc.Annotations {
				ann[k] = v
			}
		}
	}
	for k, v := range b.Annotations { // a Build's own annotations win
		ann[k] = v
	}
	return ann
}

// timing reads the line interval and the pending delay.
func (sc *simScript) timing(ann map[string]string) {
	dur := func(key string, dst *time.Duration) {
		if v, ok := ann[key]; ok {
			if d, err := time.ParseDuration(v); err == nil && d >= 0 {
				*dst = d
			} else {
				sc.scriptProblems = append(sc.scriptProblems, fmt.Sprintf("%s=%q is not a duration", key, v))
			}
		}
	}
	dur(SimLineInterval, &sc.interval)
	dur(SimPendingDelay, &sc.pending)
}

// readOutcome reads the outcome, its reason and message.
func (sc *simScript) readOutcome(ann map[string]string) {
	switch strings.ToLower(ann[SimOutcome]) {
	case "", "complete":
	case "failed":
		sc.outcome = buildv1.BuildPhaseFailed
	case "error":
		sc.outcome = buildv1.BuildPhaseError
	case "hang":
		sc.outcome = ""
	default:
		sc.scriptProblems = append(sc.scriptProblems, fmt.Sprintf("%s=%q is not Complete, Failed, Error or Hang", SimOutcome, ann[SimOutcome]))
	}
	sc.reason, sc.msg = ann[SimReason], ann[SimMessage]
}

// readLog reads the log's lines and the line the build fails after (which makes it fail).
func (sc *simScript) readLog(ann map[string]string, b *buildv1.Build) {
	if v, ok := ann[SimLog]; ok {
		sc.lines = strings.Split(strings.TrimRight(v, "\n"), "\n")
	} else {
		sc.lines = defaultLog(b)
	}
	if v, ok := ann[SimLogLines]; ok {
		n, _ := strconv.Atoi(v)
		for i := 1; i <= n; i++ {
			sc.lines = append(sc.lines, fmt.Sprintf("build output line %d of %d", i, n))
		}
	}
	if v, ok := ann[SimFailAfterLines]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			sc.failAfter = n
			if sc.outcome != buildv1.BuildPhaseError {
				sc.outcome = buildv1.BuildPhaseFailed
			}
		}
	}
}

// defaultDigest is the image digest of a build, derived from its namespace, name and commit.
func defaultDigest(b *buildv1.Build) string {
	commit := ""
	if r := b.Spec.Revision; r != nil && r.Git != nil {
		commit = r.Git.Commit
	}
	sum := sha256.Sum256([]byte(b.Namespace + "/" + b.Name + "/" + commit))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// defaultLog is a short log in the shape of an S2I or Docker build.
func defaultLog(b *buildv1.Build) []string {
	var lines []string
	if g := b.Spec.Source.Git; g != nil {
		lines = append(lines, fmt.Sprintf("Cloning %q ...", g.URI))
	}
	if r := b.Spec.Revision; r != nil && r.Git != nil {
		lines = append(lines, "\tCommit:\t"+r.Git.Commit+" ("+r.Git.Message+")")
		if r.Git.Author.Name != "" {
			lines = append(lines, "\tAuthor:\t"+r.Git.Author.Name+" <"+r.Git.Author.Email+">")
		}
	}
	switch st := b.Spec.Strategy; {
	case st.SourceStrategy != nil:
		lines = append(lines, "STEP 1/9: FROM "+st.SourceStrategy.From.Name, "STEP 9/9: RUN /usr/libexec/s2i/assemble",
			"---> Installing application source ...", "---> Building application from source ...")
	case st.DockerStrategy != nil:
		lines = append(lines, "STEP 1/4: FROM builder", "STEP 4/4: RUN make build")
	}
	lines = append(lines, "COMMIT temp.builder.openshift.io/"+b.Namespace+"/"+b.Name)
	if ref := b.Status.OutputDockerImageReference; ref != "" {
		lines = append(lines, "Pushing image "+ref+" ...")
	}
	return lines
}

// drive takes one build to its end. Each transition re-reads the Build and is retried on conflict, and a
// cancellation (status.cancelled=true, as `oc cancel-build` sets it) ends it as Cancelled.
func (s *buildSimulator) drive(ctx context.Context, b *buildv1.Build, cancelled chan struct{}) {
	defer func() {
		s.mu.Lock()
		delete(s.running, b.UID)
		s.mu.Unlock()
	}()
	r := &simRun{s: s, ctx: ctx, b: b, cancelled: cancelled, bl: s.logs.get(b.UID)}
	defer r.bl.finish()
	r.sc = s.script(ctx, b)
	if r.endIfCancelled() || !r.pending() || !r.running() {
		return
	}
	if r.sc.outcome == "" { // Hang: until cancelled
		r.hang()
		return
	}
	if r.endIfCancelled() {
		return
	}
	if r.sc.outcome == buildv1.BuildPhaseComplete {
		r.complete()
	} else {
		r.fail()
	}
}

// simRun is one build the simulator drives: the Build as first seen, its script and log, and the channel its
// cancellation closes.
type simRun struct {
	s         *buildSimulator
	ctx       context.Context
	b         *buildv1.Build
	cancelled chan struct{}
	bl        *buildLog
	sc        simScript
}

func (r *simRun) isCancelled() bool {
	select {
	case <-r.cancelled:
		return true
	default:
		return false
	}
}

// sleep waits d; false when the context ended or the build was cancelled first.
func (r *simRun) sleep(d time.Duration) bool {
	select {
	case <-r.ctx.Done():
		return false
	case <-r.cancelled:
		return false
	case <-time.After(d):
		return true
	}
}

// wait sleeps d; when it is interrupted it ends a cancelled build as Cancelled and says to stop.
func (r *simRun) wait(d time.Duration) bool {
	if !r.sleep(d) {
		if r.isCancelled() {
			r.finishCancelled()
		}
		return false
	}
	return true
}

// endIfCancelled ends a cancelled build as Cancelled, reporting whether it did.
func (r *simRun) endIfCancelled() bool {
	if r.isCancelled() {
		r.finishCancelled()
		return true
	}
	return false
}

func (r *simRun) finishCancelled() {
	r.bl.append("Build was cancelled")
	r.s.update(r.ctx, r.b, func(cur *buildv1.Build) {
		cur.Status.Phase = buildv1.BuildPhaseCancelled
		cur.Status.Reason = buildv1.StatusReasonCancelledBuild
		cur.Status.Message = "The build was cancelled by the user."
		r.s.completed(cur)
	})
}

// pending moves a New build to Pending and waits the script's pending delay.
func (r *simRun) pending() bool {
	if r.b.Status.Phase == buildv1.BuildPhaseNew {
		r.s.update(r.ctx, r.b, func(cur *buildv1.Build) { cur.Status.Phase = buildv1.BuildPhasePending })
	}
	return r.wait(r.sc.pending)
}

// running moves the build to Running and writes its log line by line, up to the line it fails after.
func (r *simRun) running() bool {
	r.s.update(r.ctx, r.b, func(cur *buildv1.Build) {
		cur.Status.Phase = buildv1.BuildPhaseRunning
		cur.Status.StartTimestamp = ptr(metav1.Now())
	})
	for _, p := range r.sc.scriptProblems {
		r.bl.append("buildsim: ignoring annotation " + p)
	}
	for i, line := range r.sc.lines {
		if i == r.sc.failAfter {
			break
		}
		r.bl.append(line)
		if !r.wait(r.sc.interval) {
			return false
		}
	}
	return true
}

// hang keeps the build Running until it is cancelled or the simulator stops.
func (r *simRun) hang() {
	select {
	case <-r.ctx.Done():
	case <-r.cancelled:
		r.finishCancelled()
	}
}

// complete pushes the image (tags the ImageStream) and ends the build as Complete with its digest.
func (r *simRun) complete() {
	b, sc := r.b, r.sc
	ref := b.Status.OutputDockerImageReference
	if ref != "" {
		r.bl.append("Successfully pushed " + repository(ref) + "@" + sc.digest)
		r.bl.append("Push successful")
		if err := r.s.tagImage(r.ctx, b, sc.digest); err != nil {
			fmt.Fprintf(r.s.log, "buildsim: %s/%s: update ImageStream: %v\n", b.Namespace, b.Name, err)
		}
	}
	r.s.update(r.ctx, b, func(cur *buildv1.Build) {
		cur.Status.Phase = buildv1.BuildPhaseComplete
		if ref != "" && !sc.omitDigest {
			cur.Status.Output.To = &buildv1.BuildStatusOutputTo{ImageDigest: sc.digest}
		}
		r.s.completed(cur)
	})
}

// fail ends the build as Failed or Error with the script's reason and message and the log's last lines.
func (r *simRun) fail() {
	sc := r.sc
	reason, msg := buildv1.StatusReason(sc.reason), sc.msg
	if reason == "" {
		reason = buildv1.StatusReasonGenericBuildFailed
		if sc.outcome == buildv1.BuildPhaseError {
			reason = buildv1.StatusReasonBuildPodDeleted
		}
	}
	if msg == "" {
		msg = "Generic Build failure - check logs for details."
	}
	r.bl.append("error: build error: " + msg)
	snippet := r.logSnippet(5)
	r.s.update(r.ctx, r.b, func(cur *buildv1.Build) {
		cur.Status.Phase, cur.Status.Reason, cur.Status.Message = sc.outcome, reason, msg
		cur.Status.LogSnippet = snippet
		r.s.completed(cur)
	})
}

// logSnippet is the last n lines of the build's log.
func (r *simRun) logSnippet(n int) string {
	lines, _, _, _ := r.bl.since(0)
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var sb strings.Builder
	for i, l := range lines {
		if i > 0 {
			sb.WriteString("\n")
		}
		sb.WriteString(l.text)
	}
	return sb.String()
}

func (s *buildSimulator) completed(b *buildv1.Build) {
	now := metav1.Now()
	b.Status.CompletionTimestamp = &now
	if b.Status.StartTimestamp == nil {
		b.Status.StartTimestamp = &now
	}
	b.Status.Duration = now.Sub(b.Status.StartTimestamp.Time)
}

// update applies mutate to the latest Build and writes it (OpenShift builds have no status subresource).
// A transition made after the user cancelled becomes Cancelled instead.
func (s *buildSimulator) update(ctx context.Context, b *buildv1.Build, mutate func(*buildv1.Build)) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := s.builds.BuildV1().Builds(b.Namespace).Get(ctx, b.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if terminal(cur.Status.Phase) {
			return nil
		}
		mutate(cur)
		cur.Status.Conditions = []buildv1.BuildCondition{{Type: buildv1.BuildConditionType(cur.Status.Phase),
			Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now(), Reason: string(cur.Status.Reason),
			Message: cur.Status.Message}}
		updated, err := s.builds.BuildV1().Builds(b.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			*b = *updated
		}
		return err
	})
	if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(s.log, "buildsim: %s/%s: update: %v\n", b.Namespace, b.Name, err)
	}
}

// tagImage records the pushed image in the output ImageStream's status, as the registry does after a push.
func (s *buildSimulator) tagImage(ctx context.Context, b *buildv1.Build, digest string) error {
	to := b.Spec.Output.To
	if to == nil || to.Kind != "ImageStreamTag" {
		return nil
	}
	ns := to.Namespace
	if ns == "" {
		ns = b.Namespace
	}
	stream, tag, _ := strings.Cut(to.Name, ":")
	if tag == "" {
		tag = "latest"
	}
	repo := repository(InternalRegistry + "/" + ns + "/" + stream)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		api := s.images.ImageV1().ImageStreams(ns)
		is, err := api.Get(ctx, stream, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			is, err = api.Create(ctx, &imagev1.ImageStream{ObjectMeta: metav1.ObjectMeta{Name: stream, Namespace: ns}}, metav1.CreateOptions{})
		}
		if err != nil {
			return err
		}
		is.Status.DockerImageRepository = repo
		ev := imagev1.TagEvent{Created: metav1.Now(), DockerImageReference: repo + "@" + digest, Image: digest, Generation: is.Generation}
		found := false
		for i := range is.Status.Tags {
			if is.Status.Tags[i].Tag == tag {
				is.Status.Tags[i].Items = append([]imagev1.TagEvent{ev}, is.Status.Tags[i].Items...)
				found = true
			}
		}
		if !found {
			is.Status.Tags = append(is.Status.Tags, imagev1.NamedTagEventList{Tag: tag, Items: []imagev1.TagEvent{ev}})
		}
		_, err = api.UpdateStatus(ctx, is, metav1.UpdateOptions{})
		return err
	})
}

// repository is an image reference without its tag or digest.
func repository(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Context().Name()
}

// buildLogs keeps each build's log in memory, for the shim's builds/{name}/log.
type buildLogs struct {
	mu sync.Mutex
	m  map[types.UID]*buildLog
}

type logLine struct {
	time time.Time
	text string
}

type buildLog struct {
	mu      sync.Mutex
	lines   []logLine
	done    bool
	changed chan struct{}
}

func newBuildLogs() *buildLogs { return &buildLogs{m: map[types.UID]*buildLog{}} }

func (l *buildLogs) get(uid types.UID) *buildLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	bl, ok := l.m[uid]
	if !ok {
		bl = &buildLog{changed: make(chan struct{})}
		l.m[uid] = bl
	}
	return bl
}

func (b *buildLog) append(text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.lines = append(b.lines, logLine{time: time.Now(), text: text})
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *buildLog) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

// since returns the lines from index i on, the next index, whether the log is finished, and a channel closed at
// the next change.
func (b *buildLog) since(i int) ([]logLine, int, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i > len(b.lines) {
		i = len(b.lines)
	}
	return append([]logLine(nil), b.lines[i:]...), len(b.lines), b.done, b.changed
}
