package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	routev1client "github.com/openshift/client-go/route/clientset/versioned/typed/route/v1"

	"github.com/canaryline/canaryline/internal/promserver"
	sampleapp "github.com/canaryline/canaryline/test/app"
)

// StackOptions configure a Stack.
type StackOptions struct {
	Routes         routev1client.RouteV1Interface // to watch the application's Route
	Namespace, App string
	Stable, Canary sampleapp.Config // the two sample-app processes
	CacheDir       string           // for a Prometheus built from the module proxy
	Scrape         time.Duration    // Prometheus's scrape interval
	Rate           int              // requests a second the router simulator sends
	Log            io.Writer
}

// Stack is what a release is judged on where no OpenShift router runs: real sample-app processes serving the
// stable and canary versions, a real Prometheus scraping them (labelled track, namespace and app), and the router
// simulator sending them load in the proportions of the application's Route.
type Stack struct {
	Stable, Canary         *sampleapp.Server
	StableAddr, CanaryAddr string
	Prometheus             *promserver.Server

	stop func()
}

// StartStack starts the stack; Stop stops it.
func StartStack(ctx context.Context, o StackOptions) (_ *Stack, err error) {
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	s := &Stack{}
	s.stop = func() {
		cancel()
		wg.Wait()
		if s.Prometheus != nil {
			s.Prometheus.Stop()
		}
	}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	serve := func(cfg sampleapp.Config) (*sampleapp.Server, string, error) {
		srv, err := sampleapp.New(cfg)
		if err != nil {
			return nil, "", err
		}
		ready := make(chan net.Addr, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.ListenAndServe(runCtx, "127.0.0.1:0", func(a net.Addr) { ready <- a })
		}()
		select {
		case a := <-ready:
			return srv, a.String(), nil
		case <-time.After(10 * time.Second):
			return nil, "", fmt.Errorf("sample-app %s did not start", cfg.Version)
		}
	}
	if s.Stable, s.StableAddr, err = serve(o.Stable); err != nil {
		return nil, err
	}
	if s.Canary, s.CanaryAddr, err = serve(o.Canary); err != nil {
		return nil, err
	}
	bin, err := promserver.Binary(ctx, o.CacheDir, o.Log)
	if err != nil {
		return nil, err
	}
	s.Prometheus, err = promserver.Start(ctx, promserver.Options{Binary: bin, Scrape: o.Scrape,
		Targets: map[string][]string{"sample-app": {s.StableAddr, s.CanaryAddr}},
		Labels: map[string]map[string]string{
			s.StableAddr: {"track": "stable", "namespace": o.Namespace, "app": o.App},
			s.CanaryAddr: {"track": "canary", "namespace": o.Namespace, "app": o.App},
		}})
	if err != nil {
		return nil, err
	}
	sim := &RouterSimulator{Routes: o.Routes, NS: o.Namespace, Name: o.App, Rate: o.Rate,
		Backends: func(svc string) string {
			switch svc {
			case o.App:
				return s.StableAddr
			case o.App + "-canary":
				return s.CanaryAddr
			}
			return ""
		}}
	wg.Add(1)
	go func() { defer wg.Done(); sim.Run(runCtx) }()
	return s, nil
}

// Stop stops the processes, the load and Prometheus.
func (s *Stack) Stop() { s.stop() }
