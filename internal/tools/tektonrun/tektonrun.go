// Package tektonrun runs canaryline's Pipelines on a Tekton controller: it installs the Tasks and Pipelines of a
// checkout into a namespace, creates PipelineRuns and follows them as `tkn pipelinerun logs -f` shows them: the
// TaskRuns' states as they change and each step's log streamed from its pod, then the results Tekton reports.
package tektonrun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektonclient "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"knative.dev/pkg/apis"
)

// Clients are what the package talks to a cluster with.
type Clients struct {
	Kube   kubernetes.Interface
	Tekton tektonclient.Interface
}

// NewClients makes Clients from a REST config.
func NewClients(cfg *rest.Config) (Clients, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, err
	}
	tk, err := tektonclient.NewForConfig(cfg)
	if err != nil {
		return Clients{}, err
	}
	return Clients{Kube: kube, Tekton: tk}, nil
}

// Install creates or updates, in namespace ns, the Tasks of root/tasks and the Pipelines of root/pipelines, as
// `kubectl apply -f tasks/ -f pipelines/` would (the RBAC in tasks/ is left to the caller).
func Install(ctx context.Context, c Clients, ns, root string) error {
	for _, dir := range []string{"tasks", "pipelines"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		if err != nil {
			return err
		}
		for _, f := range files {
			if err := installFile(ctx, c, ns, f); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	return nil
}

var decoder = func() runtime.Decoder {
	s := runtime.NewScheme()
	_ = scheme.AddToScheme(s)
	_ = pipelinev1.AddToScheme(s)
	return serializer.NewCodecFactory(s).UniversalDeserializer()
}()

func installFile(ctx context.Context, c Clients, ns, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, doc := range splitYAML(string(data)) {
		obj, _, err := decoder.Decode([]byte(doc), nil, nil)
		if err != nil {
			continue // not a Tekton or core object (a Kustomization, say)
		}
		err = nil
		switch o := obj.(type) {
		case *pipelinev1.Task:
			o.Namespace = ns
			err = upsert(func() error { _, e := c.Tekton.TektonV1().Tasks(ns).Create(ctx, o, metav1.CreateOptions{}); return e },
				func() error {
					cur, e := c.Tekton.TektonV1().Tasks(ns).Get(ctx, o.Name, metav1.GetOptions{})
					if e != nil {
						return e
					}
					o.ResourceVersion = cur.ResourceVersion
					_, e = c.Tekton.TektonV1().Tasks(ns).Update(ctx, o, metav1.UpdateOptions{})
					return e
				})
		case *pipelinev1.Pipeline:
			o.Namespace = ns
			err = upsert(func() error {
				_, e := c.Tekton.TektonV1().Pipelines(ns).Create(ctx, o, metav1.CreateOptions{})
				return e
			}, func() error {
				cur, e := c.Tekton.TektonV1().Pipelines(ns).Get(ctx, o.Name, metav1.GetOptions{})
				if e != nil {
					return e
				}
				o.ResourceVersion = cur.ResourceVersion
				_, e = c.Tekton.TektonV1().Pipelines(ns).Update(ctx, o, metav1.UpdateOptions{})
				return e
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// upsert creates, or updates what exists.
func upsert(create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		return update()
	}
	return err
}

// splitYAML splits a multi-document YAML file.
func splitYAML(s string) []string {
	var out []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		if strings.TrimSpace(d) != "" {
			out = append(out, d)
		}
	}
	return out
}

// Options configure Run and Follow.
type Options struct {
	Out io.Writer // task states and step logs; nothing when nil
	// Abort, when closed, cancels the PipelineRun (spec.status: Cancelled) and goes on following it to its end.
	Abort <-chan struct{}
	// Resync is how often the PipelineRun and its TaskRuns are read again when their watches report nothing
	// (10 s when 0): a fallback, since every change they report is read at once.
	Resync time.Duration
}

// Run creates pr and follows it to its end (Follow).
func Run(ctx context.Context, c Clients, pr *pipelinev1.PipelineRun, o Options) (*pipelinev1.PipelineRun, error) {
	created, err := c.Tekton.TektonV1().PipelineRuns(pr.Namespace).Create(ctx, pr, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create PipelineRun: %w", err)
	}
	return Follow(ctx, c, created.Namespace, created.Name, o)
}

// Follow follows PipelineRun ns/name until it is done, writing to o.Out what `tkn pipelinerun logs -f` shows:
// each TaskRun's state as it changes and each step's log, prefixed [task : step], streamed from its pod. It
// returns the PipelineRun as it ended; the error is only about following it (a failed run is not an error).
// The PipelineRun and its TaskRuns are read again whenever their watches report a change (and every o.Resync).
func Follow(ctx context.Context, c Clients, ns, name string, o Options) (*pipelinev1.PipelineRun, error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Resync == 0 {
		o.Resync = 10 * time.Second
	}
	f := &follower{c: c, ns: ns, o: o, states: map[string]string{}, streamed: map[string]bool{}}
	out := &LockedWriter{W: o.Out}
	f.out = out
	defer f.wg.Wait()
	changed, stopWatching := watchRun(ctx, c, ns, name)
	defer stopWatching()
	aborted := false
	for {
		pr, err := c.Tekton.TektonV1().PipelineRuns(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("PipelineRun %s/%s: %w", ns, name, err)
		}
		if err := f.taskRuns(ctx, pr); err != nil {
			return pr, err
		}
		if pr.IsDone() {
			f.wg.Wait()
			cond := pr.Status.GetCondition(apis.ConditionSucceeded)
			fmt.Fprintf(out, "PipelineRun %s: %s (%s) %s\n", name, conditionStatus(cond), cond.GetReason(), cond.GetMessage())
			return pr, nil
		}
		select {
		case <-ctx.Done():
			return pr, ctx.Err()
		case <-o.Abort:
			if !aborted {
				aborted = true
				o.Abort = nil
				if err := Cancel(ctx, c, ns, name); err != nil {
					return pr, err
				}
				fmt.Fprintf(out, "PipelineRun %s: cancelling (spec.status: Cancelled)\n", name)
			}
		case <-changed:
		case <-time.After(o.Resync):
		}
	}
}

// watchRun watches PipelineRun ns/name and its TaskRuns until stop is called: changed receives a value (one
// pending at most) after each event, and whenever a watch has (again) been started, since what changed before
// it started may not have been read.
func watchRun(ctx context.Context, c Clients, ns, name string) (changed <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan struct{}, 1)
	notify := func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	runs, tasks := c.Tekton.TektonV1().PipelineRuns(ns), c.Tekton.TektonV1().TaskRuns(ns)
	for _, start := range []func(context.Context) (watch.Interface, error){
		func(ctx context.Context) (watch.Interface, error) {
			return runs.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		},
		func(ctx context.Context) (watch.Interface, error) {
			return tasks.Watch(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + name})
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keepWatching(ctx, start, notify)
		}()
	}
	return ch, func() { cancel(); wg.Wait() }
}

// keepWatching runs the watch start makes, calling notify once it is started and on each event, and starts it
// again when it ends (after a second when it could not be started) until ctx ends.
func keepWatching(ctx context.Context, start func(context.Context) (watch.Interface, error), notify func()) {
	for ctx.Err() == nil {
		w, err := start(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		notify()
		drain(ctx, w, notify)
		w.Stop()
	}
}

// drain calls notify on each event of w until w or ctx ends.
func drain(ctx context.Context, w watch.Interface, notify func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.ResultChan():
			if !ok {
				return
			}
			notify()
		}
	}
}

// Cancel sets spec.status Cancelled on PipelineRun ns/name, as `tkn pipelinerun cancel` does.
func Cancel(ctx context.Context, c Clients, ns, name string) error {
	patch := []byte(`{"spec":{"status":"Cancelled"}}`)
	_, err := c.Tekton.TektonV1().PipelineRuns(ns).Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("cancel PipelineRun %s/%s: %w", ns, name, err)
	}
	return nil
}

type follower struct {
	c        Clients
	ns       string
	o        Options
	out      io.Writer
	states   map[string]string // TaskRun -> state printed
	streamed map[string]bool   // pod/container -> log streaming started
	wg       sync.WaitGroup
}

// taskRuns prints the PipelineRun's TaskRuns whose state changed and starts streaming their steps' logs.
func (f *follower) taskRuns(ctx context.Context, pr *pipelinev1.PipelineRun) error {
	trs, err := f.c.Tekton.TektonV1().TaskRuns(f.ns).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + pr.Name})
	if err != nil {
		return fmt.Errorf("TaskRuns of PipelineRun %s: %w", pr.Name, err)
	}
	sort.Slice(trs.Items, func(i, j int) bool { return trs.Items[i].CreationTimestamp.Before(&trs.Items[j].CreationTimestamp) })
	for i := range trs.Items {
		tr := &trs.Items[i]
		task := tr.Labels["tekton.dev/pipelineTask"]
		state := TaskRunState(tr)
		if f.states[tr.Name] != state {
			f.states[tr.Name] = state
			fmt.Fprintf(f.out, "[%s] TaskRun %s: %s\n", task, tr.Name, state)
		}
		if tr.Status.PodName == "" {
			continue
		}
		for _, st := range tr.Status.Steps {
			key := tr.Status.PodName + "/" + st.Container
			if f.streamed[key] || (st.Running == nil && st.Terminated == nil) {
				continue
			}
			f.streamed[key] = true
			f.wg.Add(1)
			go func(pod, container, prefix string) {
				defer f.wg.Done()
				f.stream(ctx, pod, container, prefix)
			}(tr.Status.PodName, st.Container, fmt.Sprintf("[%s : %s] ", task, st.Name))
		}
	}
	return nil
}

// stream copies a container's log, line by line with prefix, until it ends.
func (f *follower) stream(ctx context.Context, pod, container, prefix string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	rc, err := f.c.Kube.CoreV1().Pods(f.ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		fmt.Fprintf(f.out, "%s(log unavailable: %v)\n", prefix, err)
		return
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fmt.Fprintf(f.out, "%s%s\n", prefix, sc.Text())
	}
}

// TaskRunState is a TaskRun's state as tkn shows it: Pending, Running, Succeeded, Failed (reason) or Cancelled.
func TaskRunState(tr *pipelinev1.TaskRun) string {
	cond := tr.Status.GetCondition(apis.ConditionSucceeded)
	switch {
	case cond == nil:
		return "Pending"
	case cond.IsUnknown():
		return cond.GetReason()
	case cond.IsTrue():
		return "Succeeded"
	default:
		return "Failed (" + cond.GetReason() + ")"
	}
}

func conditionStatus(c *apis.Condition) string {
	switch {
	case c == nil || c.IsUnknown():
		return "Running"
	case c.IsTrue():
		return "Succeeded"
	}
	return "Failed"
}

// TaskRuns returns the PipelineRun's TaskRuns by pipeline task name (the last attempt's, for retried tasks).
func TaskRuns(ctx context.Context, c Clients, pr *pipelinev1.PipelineRun) (map[string]*pipelinev1.TaskRun, error) {
	trs, err := c.Tekton.TektonV1().TaskRuns(pr.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "tekton.dev/pipelineRun=" + pr.Name})
	if err != nil {
		return nil, err
	}
	out := map[string]*pipelinev1.TaskRun{}
	for i := range trs.Items {
		out[trs.Items[i].Labels["tekton.dev/pipelineTask"]] = &trs.Items[i]
	}
	return out, nil
}

// Results are a TaskRun's results as Tekton reports them (strings; arrays and objects as Tekton prints them).
func Results(tr *pipelinev1.TaskRun) map[string]string {
	out := map[string]string{}
	for _, r := range tr.Status.Results {
		if r.Value.StringVal != "" || r.Value.Type == pipelinev1.ParamTypeString {
			out[r.Name] = r.Value.StringVal
			continue
		}
		data, _ := r.Value.MarshalJSON()
		out[r.Name] = string(data)
	}
	return out
}

// PipelineRunStatus is the PipelineRun's Succeeded condition: status (Succeeded, Failed, Running), reason and
// message.
func PipelineRunStatus(pr *pipelinev1.PipelineRun) (status, reason, message string) {
	c := pr.Status.GetCondition(apis.ConditionSucceeded)
	return conditionStatus(c), c.GetReason(), c.GetMessage()
}
