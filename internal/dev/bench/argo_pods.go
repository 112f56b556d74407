package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// podWatch follows every pod of the cluster: the distinct pods created in each namespace, and the pods that
// exist now with their images.
type podWatch struct {
	factory informers.SharedInformerFactory
	cancel  context.CancelFunc
	mu      sync.Mutex
	seen    map[string]map[string]bool   // namespace: UIDs ever seen
	live    map[string]map[string]string // namespace: UID: image of its first container
}

// watchPods starts a podWatch and waits for its first list.
func watchPods(ctx context.Context, kube kubernetes.Interface) (*podWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &podWatch{factory: informers.NewSharedInformerFactory(kube, 0), cancel: cancel, seen: map[string]map[string]bool{},
		live: map[string]map[string]string{}}
	inf := w.factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.add(o) },
		UpdateFunc: func(_, o any) { w.add(o) },
		DeleteFunc: func(o any) { w.remove(o) },
	})
	if err != nil {
		cancel()
		return nil, err
	}
	w.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		w.stop()
		return nil, fmt.Errorf("watch pods: %w", ctx.Err())
	}
	return w, nil
}

func (w *podWatch) stop() {
	w.cancel()
	w.factory.Shutdown()
}

func (w *podWatch) add(o any) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[p.Namespace] == nil {
		w.seen[p.Namespace], w.live[p.Namespace] = map[string]bool{}, map[string]string{}
	}
	w.seen[p.Namespace][string(p.UID)] = true
	image := ""
	if len(p.Spec.Containers) > 0 {
		image = p.Spec.Containers[0].Image
	}
	w.live[p.Namespace][string(p.UID)] = image
}

func (w *podWatch) remove(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	p, ok := o.(*corev1.Pod)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.live[p.Namespace], string(p.UID))
}

// created is the number of distinct pods seen in ns so far.
func (w *podWatch) created(ns string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen[ns])
}

// running is the number of pods of image in ns that exist now (terminating ones too).
func (w *podWatch) running(ns, image string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, img := range w.live[ns] {
		if img == image {
			n++
		}
	}
	return n
}

// waitGone waits (up to 2 minutes) until no pod of image exists in ns.
func (w *podWatch) waitGone(ctx context.Context, ns, image string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for w.running(ns, image) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d pods of %s still in %s after 2 minutes", w.running(ns, image), image, ns)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// pidCPU is the CPU time process pid has used (0 for pid 0 or a process that is gone).
func pidCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
