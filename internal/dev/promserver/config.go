package promserver

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"
)

// The configuration is rendered from these types. Only fields that Prometheus 2.x and 3.x read identically are used.
type promConfig struct {
	Global        globalConfig   `json:"global"`
	ScrapeConfigs []scrapeConfig `json:"scrape_configs,omitempty"`
}

type globalConfig struct {
	ScrapeInterval     string `json:"scrape_interval"`
	ScrapeTimeout      string `json:"scrape_timeout"`
	EvaluationInterval string `json:"evaluation_interval"`
}

type scrapeConfig struct {
	JobName       string         `json:"job_name"`
	MetricsPath   string         `json:"metrics_path"`
	Scheme        string         `json:"scheme"`
	StaticConfigs []staticConfig `json:"static_configs,omitempty"`
	FileSDConfigs []fileSDConfig `json:"file_sd_configs,omitempty"`
	KubeSDConfigs []kubeSDConfig `json:"kubernetes_sd_configs,omitempty"`
	Relabel       []Relabel      `json:"relabel_configs,omitempty"`
}

// kubeSDConfig is Kubernetes service discovery: Prometheus lists and watches the role's objects on the API server.
type kubeSDConfig struct {
	APIServer     string         `json:"api_server"`
	Role          string         `json:"role"`
	Namespaces    *kubeSDNames   `json:"namespaces,omitempty"`
	Authorization *authorization `json:"authorization,omitempty"`
	TLSConfig     *tlsConfig     `json:"tls_config,omitempty"`
}

type kubeSDNames struct {
	Names []string `json:"names"`
}

type authorization struct {
	Type            string `json:"type"`
	CredentialsFile string `json:"credentials_file"`
}

type tlsConfig struct {
	CAFile string `json:"ca_file"`
}

type staticConfig struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// fileSDConfig is file-based service discovery: Prometheus reads the files at start, again whenever they change
// (it watches their directory), and every refresh interval in case a change was missed.
type fileSDConfig struct {
	Files           []string `json:"files"`
	RefreshInterval string   `json:"refresh_interval,omitempty"`
}

// sdRefresh is how often Prometheus reads a discovery file again even when no change was seen.
const sdRefresh = "30s"

// labelName is the classic label name syntax, which every Prometheus version accepts (3.x also allows UTF-8).
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// target is one (job, host:port) pair and the labels its `up` series will carry.
type target struct {
	job, addr         string
	jobLabel, inLabel string            // values of the job and instance labels on the scraped series
	labels            map[string]string // the target's other labels
}

func newTarget(job, addr string, labels map[string]string) target {
	t := target{job: job, addr: addr, jobLabel: job, inLabel: addr, labels: map[string]string{}}
	for k, v := range labels {
		switch k {
		case "job":
			t.jobLabel = v
		case "instance":
			t.inLabel = v
		default:
			t.labels[k] = v
		}
	}
	return t
}

// matches reports whether a series carries the target's labels (labels with the reserved __ prefix are not kept).
func (t target) matches(m model.Metric) bool {
	if string(m["job"]) != t.jobLabel || string(m["instance"]) != t.inLabel {
		return false
	}
	for k, v := range t.labels {
		if !strings.HasPrefix(k, "__") && string(m[model.LabelName(k)]) != v {
			return false
		}
	}
	return true
}

// checkAddr checks that a target is host:port.
func checkAddr(job, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("promserver: job %q: target %q is not host:port (it is scraped at http://<target>/metrics)", job, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("promserver: job %q: target %q has an invalid port", job, addr)
	}
	return nil
}

// checkLabels checks the names of a target's labels.
func checkLabels(addr string, labels map[string]string) error {
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !labelName.MatchString(name) {
			return fmt.Errorf("promserver: target %q: %q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", addr, name)
		}
	}
	return nil
}

// validate checks Targets, Labels and Discovered and returns every target, ordered by job then as given.
func validate(o Options) ([]target, error) {
	jobs := make([]string, 0, len(o.Targets))
	for j := range o.Targets {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	seen := map[string]bool{}
	var out []target
	for _, job := range jobs {
		if job == "" {
			return nil, fmt.Errorf("promserver: a job name is empty")
		}
		if len(o.Targets[job]) == 0 {
			return nil, fmt.Errorf("promserver: job %q has no targets", job)
		}
		inJob := map[string]bool{}
		for _, addr := range o.Targets[job] {
			if err := checkAddr(job, addr); err != nil {
				return nil, err
			}
			if inJob[addr] {
				return nil, fmt.Errorf("promserver: job %q lists target %q twice", job, addr)
			}
			inJob[addr] = true
			seen[addr] = true
			out = append(out, newTarget(job, addr, o.Labels[addr]))
		}
	}
	addrs := make([]string, 0, len(o.Labels))
	for a := range o.Labels {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		if !seen[addr] {
			return nil, fmt.Errorf("promserver: labels are given for %q, which is not a target of any job", addr)
		}
		if err := checkLabels(addr, o.Labels[addr]); err != nil {
			return nil, err
		}
	}
	if err := validateKubernetes(o); err != nil {
		return nil, err
	}
	for _, job := range discoveredJobs(o) {
		if job == "" {
			return nil, fmt.Errorf("promserver: a job name is empty")
		}
		if _, ok := o.Targets[job]; ok {
			return nil, fmt.Errorf("promserver: job %q is in both Targets and Discovered; give it once", job)
		}
		ts, err := groupTargets(job, o.Discovered[job])
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// validateKubernetes checks the jobs discovered from an API server: their names, and what Prometheus needs to
// reach the server.
func validateKubernetes(o Options) error {
	for _, job := range sortedKeys(o.Kubernetes) {
		k := o.Kubernetes[job]
		_, static := o.Targets[job]
		_, file := o.Discovered[job]
		switch {
		case job == "":
			return fmt.Errorf("promserver: a job name is empty")
		case static || file:
			return fmt.Errorf("promserver: job %q is in Kubernetes and in Targets or Discovered; give it once", job)
		case !strings.HasPrefix(k.APIServer, "https://") && !strings.HasPrefix(k.APIServer, "http://"):
			return fmt.Errorf("promserver: job %q: APIServer %q is not a URL; give the API server as Prometheus reaches it, such as https://127.0.0.1:6443", job, k.APIServer)
		}
		for _, r := range k.Relabel {
			if r.TargetLabel != "" && !labelName.MatchString(r.TargetLabel) {
				return fmt.Errorf("promserver: job %q: relabel target %q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", job, r.TargetLabel)
			}
		}
	}
	return nil
}

// groupTargets checks the groups of a discovered job and returns their targets.
func groupTargets(job string, groups []Group) ([]target, error) {
	inJob := map[string]bool{}
	var out []target
	for _, g := range groups {
		for _, addr := range g.Targets {
			if err := checkAddr(job, addr); err != nil {
				return nil, err
			}
			if err := checkLabels(addr, g.Labels); err != nil {
				return nil, err
			}
			if inJob[addr] {
				return nil, fmt.Errorf("promserver: job %q lists target %q twice", job, addr)
			}
			inJob[addr] = true
			out = append(out, newTarget(job, addr, g.Labels))
		}
	}
	return out, nil
}

// discoveredJobs are the names of o's discovered jobs, sorted.
func discoveredJobs(o Options) []string {
	jobs := make([]string, 0, len(o.Discovered))
	for j := range o.Discovered {
		jobs = append(jobs, j)
	}
	sort.Strings(jobs)
	return jobs
}

// sdFiles names each discovered job's file, relative to the configuration's directory (where Prometheus resolves
// it): file_sd/<n>.json, n its place in name order, so that any job name makes a plain file name.
func sdFiles(o Options) map[string]string {
	files := map[string]string{}
	for i, job := range discoveredJobs(o) {
		files[job] = filepath.Join("file_sd", strconv.Itoa(i)+".json")
	}
	return files
}

// renderConfig returns prometheus.yml for o: one scrape config per job (sorted by name); a static job has one
// static config per target carrying that target's extra labels, a discovered job reads its file (sdFiles); the
// scrape interval is used for scraping, timeouts and rule evaluation.
func renderConfig(o Options) ([]byte, error) {
	if _, err := validate(o); err != nil {
		return nil, err
	}
	scrape := o.Scrape
	if scrape <= 0 {
		scrape = DefaultScrape
	}
	if scrape < time.Millisecond {
		return nil, fmt.Errorf("promserver: scrape interval %s is too short", scrape)
	}
	d := model.Duration(scrape).String()
	cfg := promConfig{Global: globalConfig{ScrapeInterval: d, ScrapeTimeout: d, EvaluationInterval: d}}
	files := sdFiles(o)
	jobs := make([]string, 0, len(o.Targets)+len(o.Discovered)+len(o.Kubernetes))
	for j := range o.Targets {
		jobs = append(jobs, j)
	}
	jobs = append(jobs, discoveredJobs(o)...)
	jobs = append(jobs, sortedKeys(o.Kubernetes)...)
	sort.Strings(jobs)
	for _, job := range jobs {
		sc := scrapeConfig{JobName: job, MetricsPath: "/metrics", Scheme: "http"}
		for _, addr := range o.Targets[job] {
			sc.StaticConfigs = append(sc.StaticConfigs, staticConfig{Targets: []string{addr}, Labels: o.Labels[addr]})
		}
		if f, ok := files[job]; ok {
			sc.FileSDConfigs = []fileSDConfig{{Files: []string{f}, RefreshInterval: sdRefresh}}
		}
		if k, ok := o.Kubernetes[job]; ok {
			sc.KubeSDConfigs, sc.Relabel = []kubeSDConfig{k.config()}, k.Relabel
		}
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, sc)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("promserver: render prometheus.yml: %w", err)
	}
	return append([]byte("# Written by canaryline internal/dev/promserver.\n"), out...), nil
}

// config is k's kubernetes_sd_configs entry.
func (k Kubernetes) config() kubeSDConfig {
	c := kubeSDConfig{APIServer: k.APIServer, Role: k.Role}
	if c.Role == "" {
		c.Role = "pod"
	}
	if len(k.Namespaces) > 0 {
		c.Namespaces = &kubeSDNames{Names: k.Namespaces}
	}
	if k.TokenFile != "" {
		c.Authorization = &authorization{Type: "Bearer", CredentialsFile: k.TokenFile}
	}
	if k.CAFile != "" {
		c.TLSConfig = &tlsConfig{CAFile: k.CAFile}
	}
	return c
}

// renderGroups is the content of a discovered job's file: a JSON list of groups, as file_sd reads it.
func renderGroups(groups []Group) ([]byte, error) {
	list := make([]Group, 0, len(groups))
	for _, g := range groups {
		if g.Targets == nil {
			g.Targets = []string{}
		}
		list = append(list, g)
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("promserver: render the targets: %w", err)
	}
	return append(out, '\n'), nil
}
