package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	routev1client "github.com/openshift/client-go/route/clientset/versioned/typed/route/v1"
	"k8s.io/client-go/kubernetes"

	sampleapp "github.com/canaryline/canaryline/internal/dev/app"
	"github.com/canaryline/canaryline/internal/dev/promserver"
	"github.com/canaryline/canaryline/internal/runtime/naming"
)

// job is the Prometheus job of the sample-app processes.
const job = "sample-app"

// StackOptions configure a Stack.
type StackOptions struct {
	Kube           kubernetes.Interface           // to follow the application's Deployments, ReplicaSets and pods
	Routes         routev1client.RouteV1Interface // to watch the application's Route
	Namespace, App string
	Stable, Canary sampleapp.Config // the stable process, and what each new canary process serves (see SetCanary)
	CacheDir       string           // for a Prometheus built from the module proxy
	Scrape         time.Duration    // Prometheus's scrape interval
	Rate           int              // requests a second the router simulator sends
	Log            io.Writer
}

// Stack is what a release is judged on where no OpenShift router runs: real sample-app processes serving the
// stable and canary versions, a real Prometheus scraping them, and the router simulator sending them load in the
// proportions of the application's Route.
//
// The processes stand for pods, and carry their identity: the stable Deployment (App) and the canary Deployment
// (App-canary) are followed with informers, and each process is scraped with the target labels
// pod_template_hash (of its Deployment's current ReplicaSet) and pod (a pod of that ReplicaSet), besides track,
// namespace and app, as OpenShift's monitoring labels real pods. Prometheus discovers them from a file that is
// rewritten as they change. A new canary ReplicaSet (a new release) gets a fresh process, with fresh counters, as
// new pods would; when the canary Deployment is gone its process ends. The stable process is relabelled when the
// stable Deployment rolls out a new ReplicaSet (a promotion).
type Stack struct {
	Stable     *sampleapp.Server
	StableAddr string
	Prometheus *promserver.Server

	o       StackOptions
	runCtx  context.Context
	wg      sync.WaitGroup
	pods    *pods
	mu      sync.Mutex
	stable  identity
	canary  *process // nil when there are no canary pods
	next    sampleapp.Config
	changed chan struct{} // closed (and replaced) when the canary process changes
	stop    func()
}

// process is a sample-app process standing for the pods of one ReplicaSet.
type process struct {
	srv  *sampleapp.Server
	addr string
	id   identity
	end  context.CancelFunc
}

// StartStack starts the stack; Stop stops it.
func StartStack(ctx context.Context, o StackOptions) (_ *Stack, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	runCtx, cancel := context.WithCancel(ctx)
	s := &Stack{o: o, runCtx: runCtx, next: o.Canary, changed: make(chan struct{})}
	s.stop = func() {
		cancel()
		s.wg.Wait()
		if s.pods != nil {
			s.pods.stop()
		}
		if s.Prometheus != nil {
			s.Prometheus.Stop()
		}
	}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.pods, err = followPods(runCtx, o.Kube, o.Namespace); err != nil {
		return nil, err
	}
	stable, err := s.serve(o.Stable)
	if err != nil {
		return nil, err
	}
	s.Stable, s.StableAddr = stable.srv, stable.addr
	if s.stable = s.pods.identity(o.App, identity{}); !s.stable.complete() {
		return nil, fmt.Errorf("the stable Deployment %s/%s has no current ReplicaSet with pods", o.Namespace, o.App)
	}
	s.sync() // a canary that is already there
	bin, err := promserver.Binary(ctx, o.CacheDir, o.Log)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	groups := s.groups()
	s.mu.Unlock()
	s.Prometheus, err = promserver.Start(ctx, promserver.Options{Binary: bin, Scrape: o.Scrape,
		Discovered: map[string][]promserver.Group{job: groups}})
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.follow() }()
	sim := &RouterSimulator{Routes: o.Routes, NS: o.Namespace, Name: o.App, Rate: o.Rate, Backends: s.backend}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); sim.Run(runCtx) }()
	return s, nil
}

// Stop stops the processes, the load and Prometheus.
func (s *Stack) Stop() { s.stop() }

// SetCanary sets what the next canary process serves: a new release's pods. The current one keeps its own.
func (s *Stack) SetCanary(cfg sampleapp.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = cfg
}

// Canary is the process serving the current canary pods, nil when there are none.
func (s *Stack) Canary() *sampleapp.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.canary == nil {
		return nil
	}
	return s.canary.srv
}

// CanaryScraped waits until a process serves the canary pods and Prometheus has scraped it with its labels, and
// returns it.
func (s *Stack) CanaryScraped(ctx context.Context) (*sampleapp.Server, error) {
	for {
		s.mu.Lock()
		p, changed := s.canary, s.changed
		s.mu.Unlock()
		if p != nil {
			if err := s.Prometheus.WaitScraped(ctx); err != nil {
				return nil, err
			}
			return p.srv, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no canary pods of %s/%s-canary: %w", s.o.Namespace, s.o.App, ctx.Err())
		case <-changed:
		}
	}
}

// follow brings the processes and Prometheus's targets in line with the Deployments after every change.
func (s *Stack) follow() {
	for {
		select {
		case <-s.runCtx.Done():
			return
		case <-s.pods.changed:
		}
		if s.sync() {
			s.mu.Lock()
			err := s.Prometheus.SetTargets(job, s.groups())
			s.mu.Unlock()
			if err != nil && s.runCtx.Err() == nil {
				fmt.Fprintf(s.o.Log, "demo: %v\n", err)
			}
		}
	}
}

// sync relabels the stable process when the stable Deployment's identity changed, and starts, relabels or ends the
// canary process for the canary Deployment's. It reports whether anything changed.
func (s *Stack) sync() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	if id := s.pods.identity(s.o.App, s.stable); id.complete() && id != s.stable {
		s.stable, changed = id, true
	}
	prev := identity{}
	if s.canary != nil {
		prev = s.canary.id
	}
	id := s.pods.identity(naming.Canary(s.o.App), prev)
	switch {
	case id == prev:
	case id.complete() && id.hash == prev.hash: // another pod of the same ReplicaSet
		s.canary.id, changed = id, true
	case id.complete(): // new pods: a fresh process
		p, err := s.serve(s.next)
		if err != nil {
			fmt.Fprintf(s.o.Log, "demo: the canary's process: %v\n", err)
			break
		}
		p.id = id
		s.endCanary()
		s.canary, changed = p, true
	case id.hash == "" && s.canary != nil: // the canary Deployment is gone
		s.endCanary()
		changed = true
	}
	if changed {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return changed
}

func (s *Stack) endCanary() {
	if s.canary != nil {
		s.canary.end()
		s.canary = nil
	}
}

// groups are Prometheus's targets: each process with its identity.
func (s *Stack) groups() []promserver.Group {
	labels := func(track string, id identity) map[string]string {
		return map[string]string{"track": track, "namespace": s.o.Namespace, "app": s.o.App, "pod_template_hash": id.hash, "pod": id.pod}
	}
	groups := []promserver.Group{{Targets: []string{s.StableAddr}, Labels: labels("stable", s.stable)}}
	if s.canary != nil {
		groups = append(groups, promserver.Group{Targets: []string{s.canary.addr}, Labels: labels("canary", s.canary.id)})
	}
	return groups
}

// backend is the address of the process serving a Service, for the router simulator.
func (s *Stack) backend(svc string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case svc == s.o.App:
		return s.StableAddr
	case svc == naming.Canary(s.o.App) && s.canary != nil:
		return s.canary.addr
	}
	return ""
}

// serve starts a sample-app process on a free loopback port; it runs until its end is called or the stack stops.
func (s *Stack) serve(cfg sampleapp.Config) (*process, error) {
	srv, err := sampleapp.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, end := context.WithCancel(s.runCtx)
	ready := make(chan net.Addr, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { ready <- a })
	}()
	select {
	case a := <-ready:
		return &process{srv: srv, addr: a.String(), end: end}, nil
	case <-time.After(10 * time.Second):
		end()
		return nil, fmt.Errorf("sample-app %s did not start", cfg.Version)
	}
}
