package demo

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	routev1 "github.com/openshift/api/route/v1"
	routev1client "github.com/openshift/client-go/route/clientset/versioned/typed/route/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// RouterSimulator stands in for the OpenShift router in the demo (no router runs on the local control plane). It
// watches one Route and sends generated load, rate requests a second, to the processes or pods behind its
// Services, in the proportions of the Route's weights: what the router would do with the same weights.
type RouterSimulator struct {
	Routes   routev1client.RouteV1Interface
	NS, Name string
	Backends func(service string) string // the address (host:port) serving a Service, "" for none
	Rate     int
	// Dial, when set, connects to a backend (from inside the real node's network namespace, to a Service's
	// ClusterIP); each request then has a connection of its own, so that the Service proxy picks a ready pod for
	// every request, as the router balances over ready endpoints.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu      sync.Mutex
	weights map[string]int32
	Sent    sync.Map // service -> *atomic.Int64
}

// Run sends load until ctx ends.
func (s *RouterSimulator) Run(ctx context.Context) {
	go s.watch(ctx)
	client := &http.Client{Timeout: 2 * time.Second}
	if s.Dial != nil {
		client.Transport = &http.Transport{DialContext: s.Dial, DisableKeepAlives: true}
	}
	tick := time.NewTicker(time.Second / time.Duration(s.Rate))
	defer tick.Stop()
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		svc := s.pick()
		addr := ""
		if svc != "" {
			addr = s.Backends(svc)
		}
		if addr == "" {
			continue
		}
		c, _ := s.Sent.LoadOrStore(svc, &atomic.Int64{})
		c.(*atomic.Int64).Add(1)
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			if err != nil {
				return
			}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
}

// pick chooses a Service for one request with probability weight / sum of weights.
func (s *RouterSimulator) pick() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int32
	for _, w := range s.weights {
		total += w
	}
	if total == 0 {
		return ""
	}
	n := rand.Int32N(total)
	for svc, w := range s.weights {
		if n < w {
			return svc
		}
		n -= w
	}
	return ""
}

func (s *RouterSimulator) watch(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := s.Routes.Routes(s.NS).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", s.Name).String()})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if rt, ok := ev.Object.(*routev1.Route); ok && ev.Type != watch.Deleted {
				s.set(rt)
			}
		}
	}
}

func (s *RouterSimulator) set(rt *routev1.Route) {
	ws := map[string]int32{rt.Spec.To.Name: weight(rt.Spec.To.Weight)}
	for _, a := range rt.Spec.AlternateBackends {
		ws[a.Name] = weight(a.Weight)
	}
	s.mu.Lock()
	s.weights = ws
	s.mu.Unlock()
}

func weight(w *int32) int32 {
	if w == nil {
		return 100
	}
	return *w
}
