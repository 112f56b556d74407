package promserver

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
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
	StaticConfigs []staticConfig `json:"static_configs"`
}

type staticConfig struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// labelName is the classic label name syntax, which every Prometheus version accepts (3.x also allows UTF-8).
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// target is one (job, host:port) pair and the job/instance labels its `up` series will carry.
type target struct {
	job, addr         string
	jobLabel, inLabel string // values of the job and instance labels on the scraped series
}

// validate checks Targets and Labels and returns every target, ordered by job then as given.
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
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host == "" {
				return nil, fmt.Errorf("promserver: job %q: target %q is not host:port (it is scraped at http://<target>/metrics)", job, addr)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("promserver: job %q: target %q has an invalid port", job, addr)
			}
			if inJob[addr] {
				return nil, fmt.Errorf("promserver: job %q lists target %q twice", job, addr)
			}
			inJob[addr] = true
			seen[addr] = true
			t := target{job: job, addr: addr, jobLabel: job, inLabel: addr}
			if v, ok := o.Labels[addr]["job"]; ok {
				t.jobLabel = v
			}
			if v, ok := o.Labels[addr]["instance"]; ok {
				t.inLabel = v
			}
			out = append(out, t)
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
		for name := range o.Labels[addr] {
			if !labelName.MatchString(name) {
				return nil, fmt.Errorf("promserver: target %q: %q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", addr, name)
			}
		}
	}
	return out, nil
}

// renderConfig returns prometheus.yml for o: one scrape config per job (sorted by name), one static config per
// target carrying that target's extra labels, the scrape interval used for scraping, timeouts and rule evaluation.
func renderConfig(o Options) ([]byte, error) {
	targets, err := validate(o)
	if err != nil {
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
	for _, t := range targets {
		n := len(cfg.ScrapeConfigs)
		if n == 0 || cfg.ScrapeConfigs[n-1].JobName != t.job {
			cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, scrapeConfig{JobName: t.job, MetricsPath: "/metrics", Scheme: "http"})
			n++
		}
		sc := &cfg.ScrapeConfigs[n-1]
		sc.StaticConfigs = append(sc.StaticConfigs, staticConfig{Targets: []string{t.addr}, Labels: o.Labels[t.addr]})
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("promserver: render prometheus.yml: %w", err)
	}
	return append([]byte("# Written by canaryline internal/promserver.\n"), out...), nil
}
