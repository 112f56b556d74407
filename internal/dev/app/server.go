// Package app is a tiny HTTP application used as the "stable" and "canary"
// versions in canary-release tests and demos. Its version, error rate and
// added latency can be changed while it runs, and it exposes Prometheus
// metrics from a private registry, so several instances can share a process.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shutdownTimeout bounds how long ListenAndServe waits for in-flight requests.
const shutdownTimeout = 10 * time.Second

// Server is one instance of the sample app. It is safe for concurrent use.
type Server struct {
	mu  sync.RWMutex // guards cfg and keeps the info gauge in step with it
	cfg Config

	rngMu sync.Mutex
	rng   *rand.Rand

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	info     *prometheus.GaugeVec
	handler  http.Handler
}

// New validates cfg and returns a server for it.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &Server{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "Requests to / by status code and app version.",
		}, []string{"code", "version"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Duration of requests to /, including injected latency.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"version"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sample_app_info",
			Help: "Always 1, labelled with the current app version.",
		}, []string{"version"}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.requests, s.duration, s.info)
	s.setVersionMetrics(cfg.Version)

	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", s.serveRoot)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /admin/config", s.getConfig)
	mux.HandleFunc("PUT /admin/config", s.putConfig)
	s.handler = mux
	return s, nil
}

// Handler returns the HTTP handler serving all endpoints.
func (s *Server) Handler() http.Handler { return s.handler }

// Config returns the current configuration.
func (s *Server) Config() Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// SetVersion changes the version reported by / and used in metric labels.
func (s *Server) SetVersion(v string) error {
	_, err := s.update(func(c *Config) { c.Version = v })
	return err
}

// SetErrorRate changes the share of / requests answered with 500.
func (s *Server) SetErrorRate(r float64) error {
	_, err := s.update(func(c *Config) { c.ErrorRate = r })
	return err
}

// SetLatency changes the latency added to each / request.
func (s *Server) SetLatency(d time.Duration) error {
	_, err := s.update(func(c *Config) { c.Latency = d })
	return err
}

// update applies change to a copy of the configuration and, if the result is
// valid, stores it; either all changes take effect or none do.
func (s *Server) update(change func(*Config)) (Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cfg
	change(&next)
	if err := next.Validate(); err != nil {
		return s.cfg, err
	}
	if next.Version != s.cfg.Version {
		s.setVersionMetrics(next.Version)
	}
	s.cfg = next
	return next, nil
}

// setVersionMetrics points the info gauge at version and creates its series
// up front, so that rates work before the first request or error.
func (s *Server) setVersionMetrics(version string) {
	s.info.Reset()
	s.info.WithLabelValues(version).Set(1)
	s.requests.WithLabelValues("200", version)
	s.requests.WithLabelValues("500", version)
	s.duration.WithLabelValues(version)
}

func (s *Server) fail(rate float64) bool {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64() < rate
}

func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cfg := s.Config()
	if cfg.Latency > 0 {
		t := time.NewTimer(cfg.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // client gone; nothing to answer or count
		}
	}
	code := http.StatusOK
	if s.fail(cfg.ErrorRate) {
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-App-Version", cfg.Version)
	w.WriteHeader(code)
	if code == http.StatusOK {
		fmt.Fprintf(w, "sample-app version %s\n", cfg.Version)
	} else {
		fmt.Fprintf(w, "sample-app version %s: injected error\n", cfg.Version)
	}
	s.requests.WithLabelValues(strconv.Itoa(code), cfg.Version).Inc()
	s.duration.WithLabelValues(cfg.Version).Observe(time.Since(start).Seconds())
}

// configJSON is the wire form of the runtime-changeable settings.
type configJSON struct {
	Version   string  `json:"version"`
	ErrorRate float64 `json:"errorRate"`
	Latency   string  `json:"latency"`
}

// configPatch is the body of PUT /admin/config; absent fields are unchanged.
type configPatch struct {
	Version   *string  `json:"version"`
	ErrorRate *float64 `json:"errorRate"`
	Latency   *string  `json:"latency"`
}

func (s *Server) getConfig(w http.ResponseWriter, _ *http.Request) {
	writeConfig(w, s.Config())
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	var p configPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		http.Error(w, fmt.Sprintf("invalid JSON body: %v; send e.g. {\"errorRate\":0.2,\"latency\":\"150ms\"}", err), http.StatusBadRequest)
		return
	}
	var latency time.Duration
	if p.Latency != nil {
		d, err := time.ParseDuration(*p.Latency)
		if err != nil {
			http.Error(w, fmt.Sprintf("invalid latency %q: use a Go duration such as \"150ms\"", *p.Latency), http.StatusBadRequest)
			return
		}
		latency = d
	}
	cfg, err := s.update(func(c *Config) {
		if p.Version != nil {
			c.Version = *p.Version
		}
		if p.ErrorRate != nil {
			c.ErrorRate = *p.ErrorRate
		}
		if p.Latency != nil {
			c.Latency = latency
		}
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeConfig(w, cfg)
}

func writeConfig(w http.ResponseWriter, c Config) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(configJSON{Version: c.Version, ErrorRate: c.ErrorRate, Latency: c.Latency.String()})
}

// ListenAndServe listens on addr (as for net.Listen; port 0 picks a free
// port), calls ready with the actual address if ready is non-nil, and serves
// until ctx is cancelled. It then shuts down gracefully, waiting for in-flight
// requests, and returns nil.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
