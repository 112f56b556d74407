// Package promserver runs a real Prometheus server on loopback for tests and the demo: it finds (or builds and
// caches) a Prometheus binary, writes a scrape configuration for the given targets, starts the server on a free
// port and waits until every target has been scraped once, so PromQL checks run against real data. Targets are
// static, or discovered from files (file_sd_configs) that SetTargets rewrites while the server runs, as pods come
// and go: Prometheus reads them again on every change, without a restart; or discovered from a Kubernetes API
// server (kubernetes_sd_configs), as OpenShift's monitoring finds pods. The server may run in another network
// namespace (Options.Network), reached from the host through a forwarded loopback port.
package promserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultScrape is the scrape and rule evaluation interval used when Options.Scrape is zero.
const DefaultScrape = time.Second

const (
	readyTimeout = 60 * time.Second // process start to /-/ready
	stopGrace    = 5 * time.Second  // SIGTERM to SIGKILL
	// Prometheus hands discovered targets to the scrape manager at most every 5 s (not configurable in 2.x), so
	// the first scrape comes 5-6 s (plus up to one scrape interval) after /-/ready. Start allows this plus two intervals.
	firstScrapeTimeout = 30 * time.Second
)

// Options configure a Prometheus server.
type Options struct {
	Binary  string                       // from Binary
	Dir     string                       // data + config directory; a temp dir when empty (removed by Stop)
	Scrape  time.Duration                // scrape and evaluation interval, default 1s
	Targets map[string][]string          // job name -> host:port targets, scraped over HTTP at /metrics
	Labels  map[string]map[string]string // per target "host:port" -> extra target labels, e.g. {"track": "canary"}
	// Discovered are jobs whose targets Prometheus reads from a file (file-based service discovery): job name ->
	// the groups it starts with (none is fine). SetTargets replaces them while the server runs.
	Discovered map[string][]Group
	// Kubernetes are jobs whose targets Prometheus discovers from a Kubernetes API server, by job name.
	Kubernetes map[string]Kubernetes
	// Network, when set, is where Prometheus runs and listens (a real node's network namespace); URL is then a
	// host loopback port forwarded to it.
	Network Network
	// Host is the address Prometheus listens on (127.0.0.1 when empty): with Network, the node's address makes it
	// reachable from the node's pods too.
	Host string
	Log  io.Writer // progress lines; nil discards them
}

// Kubernetes is a job discovered from a Kubernetes API server (kubernetes_sd_configs) and relabelled.
type Kubernetes struct {
	APIServer  string   // as Prometheus reaches it, e.g. https://127.0.0.1:6443
	Role       string   // pod (the default), endpoints, service, ...
	Namespaces []string // all when empty
	TokenFile  string   // a bearer token (a ServiceAccount's that may list and watch the role's objects)
	CAFile     string   // the CA of the API server's serving certificate
	Relabel    []Relabel
}

// Relabel is one relabel_configs rule, as Prometheus documents it; empty fields take Prometheus's defaults
// (regex (.*), replacement $1, action replace).
type Relabel struct {
	SourceLabels []string `json:"source_labels,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	TargetLabel  string   `json:"target_label,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// Network is a network namespace Prometheus runs in instead of the host's (*devcluster.RealNode is one): Listen
// opens a listener there (to find a free port), Start starts a process there, and Forward makes an address there
// reachable from a host listener.
type Network interface {
	Listen(network, addr string) (net.Listener, error)
	Start(cmd *exec.Cmd) error
	Forward(l net.Listener, addr string) (stop func())
}

// Group is targets and the labels they share, as a file_sd file lists them.
type Group struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Server is a running Prometheus server started by Start.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	Addr    string // where Prometheus listens (in its network namespace with Options.Network)
	Dir     string // config (prometheus.yml), data (data/) and log (prometheus.log)
	LogPath string // the server's own output
	Version string // as reported by /api/v1/status/buildinfo, e.g. "2.42.0+ds" or "3.9.1"

	api        v1.API
	cmd        *exec.Cmd
	done       chan struct{} // closed when the process has exited
	waitErr    error
	tempDir    bool
	log        io.Writer
	stop       sync.Once
	scrape     time.Duration
	network    Network
	listenHost string
	forward    func() // stops the host port forwarded into Network

	mu         sync.Mutex
	stopped    bool
	static     []target
	discovered map[string][]target // by job, as last written
	sdFiles    map[string]string   // by job, relative to Dir
}

// Start runs Prometheus on a free 127.0.0.1 port (of o.Network when set) scraping o.Targets every o.Scrape, and
// returns once /-/ready answers 200 and every static or file-discovered target has been scraped at least once
// (its `up` series exists; a target that is down is reported to o.Log but is not an error); targets discovered
// from Kubernetes are not waited for. ctx bounds the start only: the server runs until Stop, and never
// outlives the calling process (it gets SIGKILL when the process dies).
func Start(ctx context.Context, o Options) (*Server, error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if o.Binary == "" {
		return nil, errors.New("promserver: Options.Binary is empty (use promserver.Binary)")
	}
	targets, err := validate(o)
	if err != nil {
		return nil, err
	}
	cfg, err := renderConfig(o)
	if err != nil {
		return nil, err
	}
	s, err := newServer(o, targets, log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	cfgPath, err := s.writeConfig(o, cfg)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := s.startRetrying(ctx, o.Binary, cfgPath); err != nil {
		return nil, err
	}
	if err := s.connect(ctx, time.Since(t0)); err != nil {
		return nil, err
	}
	if err := s.waitScraped(ctx, targets, firstScrapeTimeout+2*s.scrape); err != nil {
		return nil, err
	}
	if len(targets) > 0 {
		fmt.Fprintf(log, "promserver: first scrape of %d target(s) done %s after start\n",
			len(targets), time.Since(t0).Round(time.Millisecond))
	}
	ok = true
	return s, nil
}

// newServer makes the Server of o, its targets split into static and discovered ones, and its directory.
func newServer(o Options, targets []target, log io.Writer) (s *Server, err error) {
	scrape := o.Scrape
	if scrape <= 0 {
		scrape = DefaultScrape
	}
	s = &Server{Dir: o.Dir, log: log, done: make(chan struct{}), scrape: scrape, sdFiles: sdFiles(o), discovered: map[string][]target{},
		network: o.Network, listenHost: o.Host}
	for _, t := range targets {
		if _, ok := o.Discovered[t.job]; ok {
			s.discovered[t.job] = append(s.discovered[t.job], t)
		} else {
			s.static = append(s.static, t)
		}
	}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "promserver-"); err != nil {
			return nil, fmt.Errorf("promserver: %w", err)
		}
		s.tempDir = true
	} else if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("promserver: %w", err)
	}
	return s, nil
}

// writeConfig writes the discovered jobs' files and the configuration, returning its path.
func (s *Server) writeConfig(o Options, cfg []byte) (string, error) {
	for _, job := range discoveredJobs(o) {
		if err := s.writeGroups(job, o.Discovered[job]); err != nil {
			return "", err
		}
	}
	cfgPath := filepath.Join(s.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return "", fmt.Errorf("promserver: %w", err)
	}
	s.LogPath = filepath.Join(s.Dir, "prometheus.log")
	return cfgPath, nil
}

// startRetrying starts Prometheus, on another port when the one chosen was taken before it could bind it (up
// to three attempts).
func (s *Server) startRetrying(ctx context.Context, bin, cfgPath string) error {
	for attempt := 1; ; attempt++ {
		err := s.startOnce(ctx, bin, cfgPath)
		if err == nil {
			return nil
		}
		// The port was free when chosen but another process may have taken it since; try another one.
		if attempt < 3 && s.exited() && strings.Contains(s.logTail(), "address already in use") {
			fmt.Fprintf(s.log, "promserver: port taken before Prometheus could bind it; retrying\n")
			s.done = make(chan struct{})
			continue
		}
		return err
	}
}

// connect makes the API client and reads the server's version, saying how long it took to be ready.
func (s *Server) connect(ctx context.Context, ready time.Duration) error {
	client, err := api.NewClient(api.Config{Address: s.URL})
	if err != nil {
		return fmt.Errorf("promserver: %w", err)
	}
	s.api = v1.NewAPI(client)
	if bi, err := s.api.Buildinfo(ctx); err == nil {
		s.Version = bi.Version
	}
	fmt.Fprintf(s.log, "promserver: Prometheus %s (pid %d) ready at %s in %s; dir %s\n",
		s.Version, s.Pid(), s.URL, ready.Round(time.Millisecond), s.Dir)
	return nil
}

// SetTargets replaces the targets of job, one of Options.Discovered: the job's file is rewritten (atomically, as
// file_sd wants) and Prometheus follows it. Its discovery passes changes on every 5 s and the scrape manager takes
// them every 5 s, so a new target is scraped up to about 10 s later (WaitScraped waits for that); a target that
// is gone is no longer scraped and its series go stale.
func (s *Server) SetTargets(job string, groups []Group) error {
	if _, ok := s.sdFiles[job]; !ok {
		return fmt.Errorf("promserver: job %q is not discovered from a file; name it in Options.Discovered", job)
	}
	targets, err := groupTargets(job, groups)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("promserver: SetTargets(%q) after Stop", job)
	}
	if err := s.writeGroups(job, groups); err != nil {
		return err
	}
	s.discovered[job] = targets
	return nil
}

// writeGroups writes job's file: to a temporary file in the same directory, renamed into place, so that
// Prometheus never reads half of one.
func (s *Server) writeGroups(job string, groups []Group) error {
	data, err := renderGroups(groups)
	if err != nil {
		return err
	}
	path := filepath.Join(s.Dir, s.sdFiles[job])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("promserver: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("promserver: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("promserver: %w", err)
	}
	return nil
}

// WaitScraped returns once every target, static and discovered as last set, has been scraped with its labels
// at least once, or after about 30 s plus two scrape intervals with an error naming the targets still missing.
func (s *Server) WaitScraped(ctx context.Context) error {
	s.mu.Lock()
	targets := append([]target(nil), s.static...)
	for _, job := range sortedKeys(s.discovered) {
		targets = append(targets, s.discovered[job]...)
	}
	s.mu.Unlock()
	return s.waitScraped(ctx, targets, firstScrapeTimeout+2*s.scrape)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// startOnce starts the process on a fresh port and waits for /-/ready.
func (s *Server) startOnce(ctx context.Context, bin, cfgPath string) error {
	port, err := s.freePort()
	if err != nil {
		return fmt.Errorf("promserver: find a free port: %w", err)
	}
	addr := net.JoinHostPort(s.host(), strconv.Itoa(port))
	s.Addr = addr
	if s.URL, err = s.expose(addr); err != nil {
		return err
	}
	if err := s.spawnProcess(bin, cfgPath, addr); err != nil {
		return err
	}
	return s.waitReady(ctx, bin)
}

// spawnProcess starts Prometheus listening on addr, its output appended to LogPath; done is closed when it exits.
func (s *Server) spawnProcess(bin, cfgPath, addr string) error {
	// Only flags that Prometheus 2.x (Debian 12 ships 2.42) and 3.x both have.
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(s.Dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address=" + addr,
		"--web.enable-lifecycle",
	}
	lf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("promserver: %w", err)
	}
	fmt.Fprintf(lf, "== %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group, so a terminal's ^C reaches only the test; Pdeathsig, so it dies with this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := spawn
	if s.network != nil {
		start = s.network.Start
	}
	if err := start(cmd); err != nil {
		lf.Close()
		return fmt.Errorf("promserver: start %s: %w", bin, err)
	}
	s.cmd = cmd
	done := s.done
	go func() {
		s.waitErr = cmd.Wait()
		lf.Close()
		close(done)
	}()
	return nil
}

// waitReady polls /-/ready until it answers 200, the process exits or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context, bin string) error {
	done := s.done
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		if s.get(ctx, hc, "/-/ready") == http.StatusOK {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("promserver: %s exited before it was ready (%v); %s:\n%s", bin, s.waitErr, s.LogPath, s.logTail())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("promserver: Prometheus not ready at %s after %s; %s:\n%s", s.URL, readyTimeout, s.LogPath, s.logTail())
			}
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) get(ctx context.Context, hc *http.Client, path string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return 0
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitScraped polls `up` until every target has a sample with its labels, i.e. has been scraped once as it is.
func (s *Server) waitScraped(ctx context.Context, targets []target, timeout time.Duration) error {
	if len(targets) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var missing []string
	for {
		v, err := s.Query(ctx, "up")
		if err == nil {
			missing = missing[:0]
			vec, _ := v.(model.Vector)
			var down []string
			for _, t := range targets {
				var up model.SampleValue
				ok := false
				for _, smp := range vec {
					if t.matches(smp.Metric) {
						up, ok = smp.Value, true
						break
					}
				}
				switch {
				case !ok:
					missing = append(missing, t.job+"/"+t.addr)
				case up != 1:
					down = append(down, t.job+"/"+t.addr)
				}
			}
			if len(missing) == 0 {
				if len(down) > 0 {
					fmt.Fprintf(s.log, "promserver: warning: target(s) down after the first scrape (up == 0): %s\n", strings.Join(down, ", "))
				}
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("promserver: Prometheus exited (%v); %s:\n%s", s.waitErr, s.LogPath, s.logTail())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("promserver: targets not scraped within %s: %s (query error: %v); %s:\n%s",
					timeout, strings.Join(missing, ", "), err, s.LogPath, s.logTail())
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Query evaluates an instant PromQL query now. Warnings from the server are printed to the log.
func (s *Server) Query(ctx context.Context, q string) (model.Value, error) {
	if s.api == nil {
		return nil, errors.New("promserver: server not started")
	}
	v, warnings, _, err := s.api.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("promserver: query %q: %w", q, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(s.log, "promserver: query %q: warning: %s\n", q, w)
	}
	return v, nil
}

// API returns the client_golang Prometheus API client, for range queries, target listings and the like.
func (s *Server) API() v1.API { return s.api }

// Pid returns the server's process id, or 0 before it has started.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop ends the server (SIGTERM, then SIGKILL after 5 s) and removes Dir when Start created it. It is safe to
// call more than once.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.mu.Lock()
		s.stopped = true // no file is written into Dir from now on
		s.mu.Unlock()
		if s.cmd != nil && s.cmd.Process != nil {
			if !s.exited() {
				_ = s.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-s.done:
				case <-time.After(stopGrace):
					// The whole process group: Prometheus starts no children, but make sure nothing is left.
					_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
					<-s.done
				}
			}
		}
		if s.forward != nil {
			s.forward()
		}
		if s.tempDir {
			if err := os.RemoveAll(s.Dir); err != nil {
				fmt.Fprintf(s.log, "promserver: remove %s: %v\n", s.Dir, err)
			}
		}
	})
}

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// logTail returns the last lines of the server's log, for error messages.
func (s *Server) logTail() string {
	data, err := os.ReadFile(s.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// freePort is a port free on 127.0.0.1 where Prometheus runs.
func (s *Server) freePort() (int, error) {
	listen := net.Listen
	if s.network != nil {
		listen = s.network.Listen
	}
	l, err := listen("tcp", net.JoinHostPort(s.host(), "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) host() string {
	if s.listenHost == "" {
		return "127.0.0.1"
	}
	return s.listenHost
}

// expose returns Prometheus's URL from the host for its listen address: the address itself, or a host loopback
// port forwarded to it in Network (the forward of an earlier attempt is replaced).
func (s *Server) expose(addr string) (string, error) {
	if s.network == nil {
		return "http://" + addr, nil
	}
	if s.forward != nil {
		s.forward()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("promserver: listen on the host for Prometheus in its network namespace: %w", err)
	}
	s.forward = s.network.Forward(l, addr)
	return "http://" + l.Addr().String(), nil
}

// spawner starts children from one OS thread that never exits. Pdeathsig fires when the thread that forked a
// child dies, not the process, so the thread is pinned for good: the kernel kills Prometheus when this process
// dies for any reason (even SIGKILL or a test timeout), and never earlier.
var spawnReqs = func() chan spawnReq {
	reqs := make(chan spawnReq)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range reqs {
			r.resp <- r.cmd.Start()
		}
	}()
	return reqs
}()

type spawnReq struct {
	cmd  *exec.Cmd
	resp chan error
}

func spawn(cmd *exec.Cmd) error {
	resp := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, resp: resp}
	return <-resp
}
