package devcluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"

	"golang.org/x/net/http/httpguts"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	imagev1 "github.com/openshift/api/image/v1"
	buildclient "github.com/openshift/client-go/build/clientset/versioned"
	imageclient "github.com/openshift/client-go/image/clientset/versioned"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Shim is the small OpenShift API server in front of kube-apiserver. It serves the three paths that no CRD can:
//
//	POST /apis/build.openshift.io/v1/namespaces/{ns}/buildconfigs/{name}/instantiate
//	GET  /apis/build.openshift.io/v1/namespaces/{ns}/builds/{name}/log
//	GET  /apis/image.openshift.io/v1/namespaces/{ns}/imagestreamtags/{stream}:{tag}
//
// Each is authorized as OpenShift does, by RBAC on the subresource (create buildconfigs/instantiate, get
// builds/log, get imagestreamtags) for the caller's own credentials. Every other request is proxied to
// kube-apiserver unchanged, with the caller's credentials, so RBAC applies as usual.
type Shim struct {
	srv   *http.Server
	proxy *httputil.ReverseProxy
	// upgrades carries requests that switch protocols (exec, attach, port-forward) over HTTP/1.1.
	upgrades *httputil.ReverseProxy
	up       *rest.Config
	builds   buildclient.Interface
	images   imageclient.Interface
	logs     *buildLogs
	log      io.Writer
}

type shimConfig struct {
	Addr              string
	Upstream          *rest.Config // kube-apiserver, with the shim's own (privileged) identity
	CertFile, KeyFile string
	Log               io.Writer
}

var (
	instantiatePath = regexp.MustCompile(`^/apis/build\.openshift\.io/v1/namespaces/([^/]+)/buildconfigs/([^/]+)/instantiate$`)
	buildLogPath    = regexp.MustCompile(`^/apis/build\.openshift\.io/v1/namespaces/([^/]+)/builds/([^/]+)/log$`)
	istagPath       = regexp.MustCompile(`^/apis/image\.openshift\.io/v1/namespaces/([^/]+)/imagestreamtags/([^/]+)$`)
)

func startShim(ctx context.Context, cfg shimConfig) (*Shim, error) {
	target, err := url.Parse(cfg.Upstream.Host)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.Upstream.CAData)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 100, IdleConnTimeout: 90 * time.Second}
	s := &Shim{
		up:   cfg.Upstream,
		logs: newBuildLogs(),
		log:  cfg.Log,
		proxy: &httputil.ReverseProxy{
			Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
			Transport:     transport,
			FlushInterval: -1, // watches and log streams pass through as they come
			ErrorLog:      nil,
		},
	}
	// exec, attach and port-forward switch protocols (SPDY, WebSocket), which HTTP/2 cannot: they go upstream over
	// HTTP/1.1.
	h1 := transport.Clone()
	h1.ForceAttemptHTTP2, h1.TLSNextProto = false, map[string]func(string, *tls.Conn) http.RoundTripper{}
	h1.TLSClientConfig.NextProtos = []string{"http/1.1"}
	s.upgrades = &httputil.ReverseProxy{Rewrite: s.proxy.Rewrite, Transport: h1, FlushInterval: -1}
	if s.builds, err = buildclient.NewForConfig(cfg.Upstream); err != nil {
		return nil, err
	}
	if s.images, err = imageclient.NewForConfig(cfg.Upstream); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("shim: listen on %s: %w", cfg.Addr, err)
	}
	s.srv = &http.Server{Handler: s, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	sim := &buildSimulator{builds: s.builds, images: s.images, logs: s.logs, log: cfg.Log}
	go sim.run(ctx)
	return s, nil
}

func (s *Shim) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	_ = s.srv.Close()
}

func (s *Shim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && instantiatePath.MatchString(p):
		m := instantiatePath.FindStringSubmatch(p)
		s.instantiate(w, r, m[1], m[2])
	case r.Method == http.MethodGet && buildLogPath.MatchString(p):
		m := buildLogPath.FindStringSubmatch(p)
		s.buildLog(w, r, m[1], m[2])
	case r.Method == http.MethodGet && istagPath.MatchString(p):
		m := istagPath.FindStringSubmatch(p)
		s.imageStreamTag(w, r, m[1], m[2])
	default:
		// kube-apiserver may answer (a 403, say) before it reads the request body. Proxying a body that is still
		// streaming in over HTTP/2 can then stall the response, so the body, small for the API, is read first.
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
			r.Body.Close()
			if err != nil {
				writeError(w, apierrors.NewBadRequest("read request body: "+err.Error()))
				return
			}
			if len(body) > maxBody {
				writeError(w, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("request body over %d bytes", maxBody)))
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		if httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade") {
			s.upgrades.ServeHTTP(w, r)
			return
		}
		s.proxy.ServeHTTP(w, r)
	}
}

// maxBody is above kube-apiserver's own limit (3 MiB) for a request body.
const maxBody = 4 << 20

// authorize checks, with the caller's own credentials, that RBAC allows attrs, as OpenShift's API server does.
func (s *Shim) authorize(r *http.Request, attrs authorizationv1.ResourceAttributes) error {
	gr := schema.GroupResource{Group: attrs.Group, Resource: attrs.Resource}
	if attrs.Subresource != "" {
		gr.Resource += "/" + attrs.Subresource
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return apierrors.NewUnauthorized("Unauthorized")
	}
	caller := &rest.Config{Host: s.up.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: s.up.CAData}}
	kube, err := kubernetes.NewForConfig(caller)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	review, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(r.Context(),
		&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}},
		metav1.CreateOptions{})
	if err != nil {
		var st apierrors.APIStatus
		if errors.As(err, &st) {
			return err
		}
		return apierrors.NewInternalError(err)
	}
	if review.Status.Allowed {
		return nil
	}
	user := "unknown"
	if who, err := kube.AuthenticationV1().SelfSubjectReviews().Create(r.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		user = who.Status.UserInfo.Username
	}
	return apierrors.NewForbidden(gr, attrs.Name, fmt.Errorf("User %q cannot %s resource %q in API group %q in the namespace %q",
		user, attrs.Verb, gr.Resource, attrs.Group, attrs.Namespace))
}

func (s *Shim) instantiate(w http.ResponseWriter, r *http.Request, ns, name string) {
	if err := s.authorize(r, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: buildv1.GroupName,
		Resource: "buildconfigs", Subresource: "instantiate", Name: name}); err != nil {
		writeError(w, err)
		return
	}
	req := &buildv1.BuildRequest{}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(req); err != nil {
		writeError(w, apierrors.NewBadRequest("decode BuildRequest: "+err.Error()))
		return
	}
	if req.Name != "" && req.Name != name {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("BuildRequest name %q does not match the BuildConfig %q", req.Name, name)))
		return
	}
	b, err := instantiate(r.Context(), s.builds, ns, name, req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeObject(w, http.StatusCreated, b)
}

func (s *Shim) imageStreamTag(w http.ResponseWriter, r *http.Request, ns, name string) {
	if err := s.authorize(r, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Group: imagev1.GroupName,
		Resource: "imagestreamtags", Name: name}); err != nil {
		writeError(w, err)
		return
	}
	gr := schema.GroupResource{Group: imagev1.GroupName, Resource: "imagestreamtags"}
	stream, tag, ok := strings.Cut(name, ":")
	if !ok || stream == "" || tag == "" {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("imagestreamtag name %q must be <stream>:<tag>", name)))
		return
	}
	is, err := s.images.ImageV1().ImageStreams(ns).Get(r.Context(), stream, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			err = apierrors.NewNotFound(gr, name)
		}
		writeError(w, err)
		return
	}
	ist := imageStreamTagFor(is, tag)
	if ist == nil {
		writeError(w, apierrors.NewNotFound(gr, name))
		return
	}
	writeObject(w, http.StatusOK, ist)
}

// imageStreamTagFor computes the virtual ImageStreamTag from the stream's status, as OpenShift does.
func imageStreamTagFor(is *imagev1.ImageStream, tag string) *imagev1.ImageStreamTag {
	for _, t := range is.Status.Tags {
		if t.Tag != tag || len(t.Items) == 0 {
			continue
		}
		latest := t.Items[0]
		ist := &imagev1.ImageStreamTag{
			TypeMeta: metav1.TypeMeta{APIVersion: "image.openshift.io/v1", Kind: "ImageStreamTag"},
			ObjectMeta: metav1.ObjectMeta{Name: is.Name + ":" + tag, Namespace: is.Namespace,
				CreationTimestamp: latest.Created, UID: is.UID, ResourceVersion: is.ResourceVersion},
			Generation: latest.Generation,
			Image: imagev1.Image{ObjectMeta: metav1.ObjectMeta{Name: latest.Image},
				DockerImageReference: latest.DockerImageReference},
		}
		for _, ref := range is.Spec.Tags {
			if ref.Name == tag {
				ist.Tag = ref.DeepCopy()
			}
		}
		return ist
	}
	return nil
}

func (s *Shim) buildLog(w http.ResponseWriter, r *http.Request, ns, name string) {
	bl, opts, ok := s.openBuildLog(w, r, ns, name)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	lw := &logWriter{w: w, opts: opts}
	lw.flusher, _ = w.(http.Flusher)
	lines, next, done, changed := bl.since(0)
	lines = opts.filter(lines)
	if !lw.write(lines) || !opts.Follow {
		return
	}
	for !done {
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
		lines, next, done, changed = bl.since(next)
		if !lw.write(lines) {
			return
		}
	}
}

// openBuildLog authorizes a request for a build's log, reads its options and finds the log; on a problem it
// writes the error and ok is false.
func (s *Shim) openBuildLog(w http.ResponseWriter, r *http.Request, ns, name string) (bl *buildLog, opts logOptions, ok bool) {
	if err := s.authorize(r, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Group: buildv1.GroupName,
		Resource: "builds", Subresource: "log", Name: name}); err != nil {
		writeError(w, err)
		return nil, opts, false
	}
	opts, err := parseLogOptions(r.URL.Query())
	if err != nil {
		writeError(w, apierrors.NewBadRequest(err.Error()))
		return nil, opts, false
	}
	b, err := s.builds.BuildV1().Builds(ns).Get(r.Context(), name, metav1.GetOptions{})
	if err != nil {
		writeError(w, err)
		return nil, opts, false
	}
	bl = s.logs.get(b.UID)
	if terminal(b.Status.Phase) {
		bl.finish() // nothing more will come (also for builds this process never drove)
	}
	if opts.NoWait && (b.Status.Phase == buildv1.BuildPhaseNew || b.Status.Phase == buildv1.BuildPhasePending) {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("build %s is in phase %s; no logs yet", name, b.Status.Phase)))
		return nil, opts, false
	}
	return bl, opts, true
}

// logWriter writes a build's log lines to a response, with timestamps when asked for, up to the byte limit.
type logWriter struct {
	w       io.Writer
	flusher http.Flusher
	opts    logOptions
	written int64
}

// write writes ls and flushes them; false when the limit is reached or the client is gone.
func (lw *logWriter) write(ls []logLine) bool {
	for _, l := range ls {
		text := l.text + "\n"
		if lw.opts.Timestamps {
			text = l.time.UTC().Format(time.RFC3339Nano) + " " + text
		}
		if lw.opts.LimitBytes > 0 && lw.written+int64(len(text)) > lw.opts.LimitBytes {
			return false
		}
		n, err := io.WriteString(lw.w, text)
		lw.written += int64(n)
		if err != nil {
			return false
		}
	}
	if lw.flusher != nil {
		lw.flusher.Flush()
	}
	return true
}

type logOptions struct {
	Follow, NoWait, Timestamps bool
	TailLines, LimitBytes      int64
	SinceTime                  time.Time
	SinceSeconds               int64
}

// parseLogOptions reads buildv1.BuildLogOptions from the query, as the REST client encodes them.
func parseLogOptions(q url.Values) (logOptions, error) {
	var o logOptions
	var err error
	boolean := func(k string) bool { v := q.Get(k); return v == "true" || v == "1" }
	o.Follow, o.NoWait, o.Timestamps = boolean("follow"), boolean("nowait"), boolean("timestamps")
	for k, dst := range map[string]*int64{"tailLines": &o.TailLines, "limitBytes": &o.LimitBytes, "sinceSeconds": &o.SinceSeconds} {
		if v := q.Get(k); v != "" {
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil || *dst < 0 {
				return o, fmt.Errorf("%s=%q: must be a non-negative integer", k, v)
			}
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		if o.SinceTime, err = time.Parse(time.RFC3339, v); err != nil {
			return o, fmt.Errorf("sinceTime=%q: must be RFC 3339", v)
		}
	}
	return o, nil
}

// filter applies sinceTime/sinceSeconds/tailLines to the lines already there.
func (o logOptions) filter(lines []logLine) []logLine {
	since := o.SinceTime
	if o.SinceSeconds > 0 {
		since = time.Now().Add(-time.Duration(o.SinceSeconds) * time.Second)
	}
	if !since.IsZero() {
		i := 0
		for i < len(lines) && lines[i].time.Before(since) {
			i++
		}
		lines = lines[i:]
	}
	if o.TailLines > 0 && int64(len(lines)) > o.TailLines {
		lines = lines[int64(len(lines))-o.TailLines:]
	}
	return lines
}

func writeObject(w http.ResponseWriter, code int, obj any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(obj)
}

func writeError(w http.ResponseWriter, err error) {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		st = apierrors.NewInternalError(err)
	}
	status := st.Status()
	status.APIVersion, status.Kind = "v1", "Status"
	code := int(status.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	writeObject(w, code, status)
}

func tlsClient(caData []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caData)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// httpOK is a readiness condition: GET url answers 200.
func httpOK(c *http.Client, url, token string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}
