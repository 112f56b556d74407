package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	buildv1 "github.com/openshift/api/build/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"

	"github.com/canaryline/canaryline/internal/runtime/kubeclient"
	"github.com/canaryline/canaryline/internal/runtime/osclient"
	"github.com/canaryline/canaryline/internal/runtime/step"
)

// Image is what wait-build hands on: the image pinned by digest.
type Image struct {
	URL            string // repository@sha256:...
	Digest         string // sha256:...
	ImageStreamTag string // namespace/stream:tag, when the build pushed to one
}

// Results are wait-build's Tekton results, under the names Tekton Chains recognises.
func (i Image) Results() map[string]string {
	return map[string]string{"IMAGE_URL": i.URL, "IMAGE_DIGEST": i.Digest, "IMAGE_STREAM_TAG": i.ImageStreamTag}
}

// Clients are the API clients wait-build uses.
type Clients struct {
	Build osclient.BuildV1Interface
	Image osclient.ImageV1Interface
	// Namespaces tells a missing namespace from a missing build (nil: not told).
	Namespaces step.NamespaceGetter
}

// Wait follows build cfg.BuildName to its end, streaming its log to out, and returns its image. When ctx ends or
// cfg.Timeout runs out first, the build is cancelled (unless cfg.CancelOnStop is false).
func Wait(ctx context.Context, cfg *WaitConfig, ns string, c Clients, out io.Writer, log *slog.Logger) (Image, error) {
	w := &waiter{cfg: cfg, ns: ns, c: c, out: out, log: log}
	if err := w.checkBuild(ctx); err != nil {
		if ctx.Err() != nil { // stopped (SIGTERM) while reading the build: it may be running, so cancel it
			return Image{}, w.stopped(ctx)
		}
		return Image{}, err
	}
	log.Info("waiting for build "+describe(ns, cfg.BuildName), "timeout", cfg.Timeout)
	wctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logs := w.followLogs(wctx)
	defer logs.stop()
	b, err := untilDone(wctx, c.Build, ns, cfg.BuildName)
	if err != nil {
		logs.end()
		if wctx.Err() == nil { // the build was deleted, or the API failed: not a stop
			return Image{}, err
		}
		return Image{}, w.stopped(ctx)
	}
	// The log ends with the build; give the stream a moment to deliver its last lines.
	logs.drain(10 * time.Second)
	if b.Status.Phase != buildv1.BuildPhaseComplete {
		return Image{}, failed(ns, b)
	}
	img, err := builtImage(ctx, c, b)
	if err != nil {
		return Image{}, err
	}
	log.Info(fmt.Sprintf("build %s complete: %s", describe(ns, b.Name), img.URL), "digest", img.Digest,
		"imagestreamtag", img.ImageStreamTag, "duration", b.Status.Duration.Round(time.Second))
	return img, nil
}

// waiter is one run of wait-build.
type waiter struct {
	cfg *WaitConfig
	ns  string
	c   Clients
	out io.Writer
	log *slog.Logger
}

// checkBuild reads the build once: a missing build (or namespace) is bad input.
func (w *waiter) checkBuild(ctx context.Context) error {
	cfg, ns := w.cfg, w.ns
	if _, err := w.c.Build.Builds(ns).Get(ctx, cfg.BuildName, metav1.GetOptions{}); err != nil {
		if p := step.NamespaceProblem(ctx, err, ns, "get builds", w.c.Namespaces); p != nil {
			return p
		}
		return apiError(err, "get", "builds", ns, cfg.BuildName, notFound{Param: "BUILD_NAME",
			Msg: fmt.Sprintf("build %s does not exist", describe(ns, cfg.BuildName)),
			Fix: "pass start-build's BUILD_NAME result, and NAMESPACE when the build is in another namespace"})
	}
	return nil
}

// logStream is the build log being followed (or not: FOLLOW_LOGS=false).
type logStream struct {
	done chan struct{}
	stop context.CancelFunc
}

// followLogs streams the build's log to out until ctx ends or the log does, when FOLLOW_LOGS is set.
func (w *waiter) followLogs(ctx context.Context) *logStream {
	logCtx, stop := context.WithCancel(ctx)
	l := &logStream{done: make(chan struct{}), stop: stop}
	if w.cfg.FollowLogs {
		f := &logFollower{builds: w.c.Build, ns: w.ns, name: w.cfg.BuildName, out: w.out, log: w.log}
		go func() { defer close(l.done); f.follow(logCtx) }()
	} else {
		close(l.done)
	}
	return l
}

// drain waits up to wait for the log to end, then stops following it.
func (l *logStream) drain(wait time.Duration) {
	select {
	case <-l.done:
	case <-time.After(wait):
		l.end()
	}
}

// end stops following the log, and waits until the stream has stopped.
func (l *logStream) end() {
	l.stop()
	<-l.done
}

// stopped is the error of a build that did not end before the step was stopped or TIMEOUT ran out: the build is
// cancelled then, unless CANCEL_ON_STOP is false.
func (w *waiter) stopped(ctx context.Context) error {
	cfg, ns := w.cfg, w.ns
	why := "the step was stopped"
	if ctx.Err() == nil {
		why = fmt.Sprintf("TIMEOUT %s ran out", cfg.Timeout)
	}
	if !cfg.CancelOnStop {
		return fmt.Errorf("build %s did not end before %s; it goes on (CANCEL_ON_STOP=false)", describe(ns, cfg.BuildName), why)
	}
	w.log.Info("cancelling build "+describe(ns, cfg.BuildName), "because", why)
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
	defer ccancel()
	end, cerr := Cancel(cctx, w.c.Build, ns, cfg.BuildName)
	if cerr != nil {
		return fmt.Errorf("build %s did not end before %s, and cancelling it failed: %w", describe(ns, cfg.BuildName), why, cerr)
	}
	return fmt.Errorf("build %s did not end before %s: it is now %s", describe(ns, cfg.BuildName), why, end.Status.Phase)
}

// failed is the FailedError of a build that ended other than Complete: its phase, reason, message and the last
// lines of its log.
func failed(ns string, b *buildv1.Build) error {
	msg := fmt.Sprintf("build %s ended %s", describe(ns, b.Name), b.Status.Phase)
	if b.Status.Reason != "" {
		msg += " (" + string(b.Status.Reason) + ")"
	}
	if b.Status.Message != "" {
		msg += ": " + b.Status.Message
	}
	if b.Status.LogSnippet != "" {
		msg += "\nlast lines of the build log:\n" + indent(b.Status.LogSnippet)
	}
	return step.Failed("%s", msg)
}

// untilDone waits for a terminal phase with list+watch: a list, then a watch from the list's resourceVersion,
// listing again whenever the watch ends (the reflector behind UntilWithSync does this), as `oc start-build --wait`.
func untilDone(ctx context.Context, c osclient.BuildV1Interface, ns, name string) (*buildv1.Build, error) {
	lw := kubeclient.ListWatchByName(name, false, c.Builds(ns).List, c.Builds(ns).Watch)
	var deleted bool
	ev, err := watchtools.UntilWithSync(ctx, lw, &buildv1.Build{}, nil, func(e watch.Event) (bool, error) {
		if e.Type == watch.Deleted {
			deleted = true
			return true, nil
		}
		b, ok := e.Object.(*buildv1.Build)
		return ok && terminal(b.Status.Phase), nil
	})
	if err != nil {
		return nil, err
	}
	if deleted {
		return nil, step.Failed("build %s was deleted before it ended", describe(ns, name))
	}
	return ev.Object.(*buildv1.Build), nil
}

// Cancel cancels a build as `oc cancel-build` does: set status.cancelled and update (retrying on conflict), then
// wait until the build controller has ended it.
func Cancel(ctx context.Context, c osclient.BuildV1Interface, ns, name string) (*buildv1.Build, error) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		b, err := c.Builds(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if terminal(b.Status.Phase) || b.Status.Cancelled {
			return nil
		}
		b.Status.Cancelled = true
		_, err = c.Builds(ns).Update(ctx, b, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, apiError(err, "update", "builds", ns, name, notFound{})
	}
	return untilDone(ctx, c, ns, name)
}

// builtImage is the completed build's image pinned by digest. The digest comes from the build's status, or, when
// the build did not record one, from the ImageStreamTag it pushed to.
func builtImage(ctx context.Context, c Clients, b *buildv1.Build) (Image, error) {
	var img Image
	if to := b.Status.Output.To; to != nil {
		img.Digest = to.ImageDigest
	}
	repo := ""
	if ref := b.Status.OutputDockerImageReference; ref != "" {
		if r, err := name.ParseReference(ref, name.WeakValidation); err == nil {
			repo = r.Context().Name()
		}
	}
	if out := b.Spec.Output.To; out != nil && out.Kind == "ImageStreamTag" {
		ns := out.Namespace
		if ns == "" {
			ns = b.Namespace
		}
		tag := out.Name
		if !strings.Contains(tag, ":") {
			tag += ":latest"
		}
		img.ImageStreamTag = ns + "/" + tag
		if img.Digest == "" || repo == "" {
			ist, err := c.Image.ImageStreamTags(ns).Get(ctx, tag, metav1.GetOptions{})
			if err != nil {
				return img, apiError(err, "get", "imagestreamtags", ns, tag, notFound{Msg: fmt.Sprintf("build %s reported no image digest, "+
					"and its ImageStreamTag %s does not exist", describe(b.Namespace, b.Name), img.ImageStreamTag),
					Fix: "check the BuildConfig's spec.output and that the build pushed to the ImageStreamTag"})
			}
			if img.Digest == "" {
				img.Digest = ist.Image.Name
			}
			if r, err := name.ParseReference(ist.Image.DockerImageReference, name.WeakValidation); err == nil && repo == "" {
				repo = r.Context().Name()
			}
		}
	}
	if !strings.HasPrefix(img.Digest, "sha256:") || len(img.Digest) != 71 {
		return img, fmt.Errorf("build %s completed but no image digest can be found: not in status.output.to.imageDigest, "+
			"nor in an output ImageStreamTag (spec.output.to is %v); check the BuildConfig's spec.output", describe(b.Namespace, b.Name), b.Spec.Output.To)
	}
	if repo == "" {
		return img, fmt.Errorf("build %s completed with digest %s but names no image repository (status.outputDockerImageReference is empty)",
			describe(b.Namespace, b.Name), img.Digest)
	}
	img.URL = repo + "@" + img.Digest
	return img, nil
}

func terminal(p buildv1.BuildPhase) bool {
	switch p {
	case buildv1.BuildPhaseComplete, buildv1.BuildPhaseFailed, buildv1.BuildPhaseError, buildv1.BuildPhaseCancelled:
		return true
	}
	return false
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

var errStreamEnded = errors.New("log stream ended")
