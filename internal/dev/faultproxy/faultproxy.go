// Package faultproxy is a fault-injecting proxy for tests: it sits between canaryline's steps and kube-apiserver,
// forwards every request, and by rate or by schedule answers some of them with a fault instead: 500, 503, 429 with
// Retry-After, 409 Conflict, a reset connection, a slow answer, or a watch (or followed log) cut mid-way. It counts
// every request by verb and every fault by kind, and can call a hook right after a mutating request took effect,
// before its answer goes back (where a test kills the step).
package faultproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// Fault is a kind of injected fault.
type Fault string

const (
	None      Fault = ""
	Status500 Fault = "500"
	Status503 Fault = "503"
	Status429 Fault = "429"
	// Conflict answers an update or patch with 409 Conflict, as when another writer moved first.
	Conflict Fault = "409"
	// Reset resets the connection before the request reaches the apiserver.
	Reset Fault = "reset"
	// Lost lets a write take effect at the apiserver, then resets the connection: the answer is lost, and the
	// client cannot tell whether its write happened.
	Lost Fault = "lost-answer"
	// Slow holds the request for Options.Slow before forwarding it.
	Slow Fault = "slow"
	// WatchCut forwards a watch or a followed log and cuts the stream mid-way.
	WatchCut Fault = "watch-cut"
)

// AllFaults is every kind of fault.
var AllFaults = []Fault{Status500, Status503, Status429, Conflict, Reset, Lost, Slow, WatchCut}

// Request is what the proxy knows of a request.
type Request struct {
	Verb, Resource, Subresource, Namespace, Name string
	Method, Path                                 string
	UserAgent                                    string // canaryline/<step> for a step
}

// Mutating says whether the request writes.
func (r Request) Mutating() bool {
	switch r.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

func (r Request) String() string {
	s := r.Verb + " " + r.Resource
	if r.Subresource != "" {
		s += "/" + r.Subresource
	}
	if r.Name != "" {
		s += " " + r.Name
	}
	return s
}

// Options configure a Proxy.
type Options struct {
	// Upstream is the apiserver's URL; UpstreamCA its CA bundle (PEM).
	Upstream   string
	UpstreamCA []byte
	// Rate is the share of requests (0-1) given a fault, chosen at random among Faults (AllFaults when empty)
	// that fit the request.
	Rate   float64
	Faults []Fault
	Seed   uint64
	// Slow is how long a Slow fault holds a request (default 1 s).
	Slow time.Duration
	// Schedule, when set, picks the fault for the n-th request (from 1) instead of Rate.
	Schedule func(n int, r Request) Fault
	// AfterMutation is called after a mutating request got its answer from the apiserver and before the answer
	// is passed on; n counts mutating requests from 1.
	AfterMutation func(n int, r Request, status int)
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL    string
	CAData []byte // PEM of the proxy's serving certificate

	o      Options
	srv    *httptest.Server
	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	rnd    *rand.Rand
	n, nm  int
	verbs  map[string]int
	faults map[Fault]int
	log    []string
}

// Start starts a proxy; Close stops it.
func Start(o Options) (*Proxy, error) {
	up, err := url.Parse(o.Upstream)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if len(o.UpstreamCA) > 0 && !pool.AppendCertsFromPEM(o.UpstreamCA) {
		return nil, fmt.Errorf("no certificate in the upstream CA bundle")
	}
	if o.Slow == 0 {
		o.Slow = time.Second
	}
	if len(o.Faults) == 0 {
		o.Faults = AllFaults
	}
	p := &Proxy{o: o, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), verbs: map[string]int{}, faults: map[Fault]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(up); pr.Out.Host = up.Host },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: false,
			MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second},
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	p.srv.StartTLS()
	p.URL = p.srv.URL
	p.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	return p, nil
}

// Close stops the proxy, cutting what is in flight.
func (p *Proxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// Kubeconfig writes a copy of the kubeconfig at from to dir, pointing at the proxy, and returns its path.
func (p *Proxy) Kubeconfig(from, dir string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return "", err
	}
	for _, c := range cfg.Clusters {
		c.Server, c.CertificateAuthorityData, c.CertificateAuthority = p.URL, p.CAData, ""
	}
	path := filepath.Join(dir, "kubeconfig-faultproxy")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// Stats are the proxy's counts.
type Stats struct {
	Requests int
	Mutating int
	ByVerb   map[string]int
	Faults   map[Fault]int
}

// FaultCount is the number of faults injected.
func (s Stats) FaultCount() int {
	n := 0
	for _, v := range s.Faults {
		n += v
	}
	return n
}

func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests (%d mutating), %d faults", s.Requests, s.Mutating, s.FaultCount())
	keys := make([]string, 0, len(s.Faults))
	for k := range s.Faults {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for i, k := range keys {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %d", sep, k, s.Faults[Fault(k)])
	}
	return b.String()
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Requests: p.n, Mutating: p.nm, ByVerb: map[string]int{}, Faults: map[Fault]int{}}
	for k, v := range p.verbs {
		s.ByVerb[k] = v
	}
	for k, v := range p.faults {
		s.Faults[k] = v
	}
	return s
}

// Log returns one line per request: verb, resource, name, and the fault if any.
func (p *Proxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// Classify tells what an API request does, from its method, path and query.
func Classify(r *http.Request) Request {
	req := Request{Method: r.Method, Path: r.URL.Path}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		parts = nil
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) != 2 {
		req.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) > 0 {
		req.Resource = parts[0]
	}
	if len(parts) > 1 {
		req.Name = parts[1]
	}
	if len(parts) > 2 {
		req.Subresource = parts[2]
	}
	watch := r.URL.Query().Get("watch")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watch == "true" || watch == "1":
			req.Verb = "watch"
		case req.Name == "":
			req.Verb = "list"
		default:
			req.Verb = "get"
		}
	case http.MethodPost:
		req.Verb = "create"
	case http.MethodPut:
		req.Verb = "update"
	case http.MethodPatch:
		req.Verb = "patch"
	case http.MethodDelete:
		req.Verb = "delete"
		if req.Name == "" {
			req.Verb = "deletecollection"
		}
	}
	req.UserAgent = r.Header.Get("User-Agent")
	return req
}

// streaming says whether the request's answer is a long stream: a watch or a followed log.
func streaming(r *http.Request, req Request) bool {
	return req.Verb == "watch" || (req.Subresource == "log" && r.URL.Query().Get("follow") == "true")
}

// pick chooses the fault for the n-th request.
func (p *Proxy) pick(n int, r *http.Request, req Request) Fault {
	if p.o.Schedule != nil {
		return p.o.Schedule(n, req)
	}
	if p.o.Rate <= 0 || p.rnd.Float64() >= p.o.Rate {
		return None
	}
	var fits []Fault
	for _, f := range p.o.Faults {
		switch {
		case f == Conflict && req.Verb != "update" && req.Verb != "patch":
		case f == Lost && !req.Mutating():
		case f == WatchCut && !streaming(r, req):
		default:
			fits = append(fits, f)
		}
	}
	if len(fits) == 0 {
		return None
	}
	if streaming(r, req) && p.rnd.IntN(2) == 0 {
		return WatchCut // streams are few: cut them more often than their share
	}
	return fits[p.rnd.IntN(len(fits))]
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	req := Classify(r)
	p.mu.Lock()
	p.n++
	n := p.n
	p.verbs[req.Verb]++
	fault := p.pick(n, r, req)
	if fault != None {
		p.faults[fault]++
	}
	line := req.String()
	if req.UserAgent != "" {
		line = req.String() + " (" + req.UserAgent + ")"
	}
	if fault != None {
		line += " [" + string(fault) + "]"
	}
	p.log = append(p.log, line)
	p.mu.Unlock()

	switch fault {
	case Status500:
		writeStatus(w, http.StatusInternalServerError, "InternalError", "injected fault: internal error", 0)
		return
	case Status503:
		writeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "injected fault: service unavailable", 0)
		return
	case Status429:
		writeStatus(w, http.StatusTooManyRequests, "TooManyRequests", "injected fault: too many requests, please try again later", 1)
		return
	case Conflict:
		writeStatus(w, http.StatusConflict, "Conflict", fmt.Sprintf("Operation cannot be fulfilled on %s %q: injected fault: the object has been modified; please apply your changes to the latest version and try again", req.Resource, req.Name), 0)
		return
	case Reset:
		reset(w)
		return
	case Slow:
		select {
		case <-time.After(p.o.Slow):
		case <-r.Context().Done():
			return
		}
	}

	if !req.Mutating() && fault != WatchCut {
		p.rp.ServeHTTP(w, r)
		return
	}
	if fault == WatchCut {
		// Forward the stream, and cut it after a while, mid-way: the upstream request is cancelled, and the reverse
		// proxy aborts the answer without a clean end of its chunked body.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		t := time.AfterFunc(time.Duration(100+p.rndIntN(1500))*time.Millisecond, cancel)
		defer t.Stop()
		p.rp.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	// A write: take the answer from the apiserver, then call the hook, then pass the answer on (or lose it).
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	p.rp.ServeHTTP(rec, r)
	p.mu.Lock()
	p.nm++
	nm := p.nm
	p.mu.Unlock()
	if p.o.AfterMutation != nil {
		p.o.AfterMutation(nm, req, rec.code)
	}
	if fault == Lost {
		reset(w)
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.code)
	_, _ = w.Write(rec.body.Bytes())
}

func (p *Proxy) rndIntN(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rnd.IntN(n)
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string, retryAfter int) {
	st := map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{}, "status": "Failure",
		"message": msg, "reason": reason, "code": code}
	if retryAfter > 0 {
		st["details"] = map[string]any{"retryAfterSeconds": retryAfter}
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	}
	data, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// reset closes the client's connection with a TCP reset.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
