package bench

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/canaryline/canaryline/internal/dev/devcluster"
)

func TestVMRSS(t *testing.T) {
	status := []byte("Name:\tkubelet\nUmask:\t0022\nVmHWM:\t   91234 kB\nVmRSS:\t   81920 kB\nRssAnon:\t   40000 kB\n")
	if got, ok := vmRSS(status); !ok || got != 81920*1024 {
		t.Errorf("vmRSS = %d, %t; want %d", got, ok, 81920*1024)
	}
	if name, ok := statusField(status, "Name"); !ok || name != "kubelet" {
		t.Errorf("Name = %q, %t", name, ok)
	}
	for _, s := range []string{"Name:\tkthreadd\nState:\tS (sleeping)\n", "VmRSS:\tlots kB\n", ""} {
		if got, ok := vmRSS([]byte(s)); ok {
			t.Errorf("vmRSS(%q) = %d; want none", s, got)
		}
	}
}

// TestNodeRSSOfThisProcess reads a cgroup's processes as nodeRSS does: this test's own cgroup holds this process,
// whose VmRSS is counted under its executable's name.
func TestNodeRSSOfThisProcess(t *testing.T) {
	cg := ownCgroup(t)
	rss, err := nodeRSS([]string{cg})
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self := programOf(os.Getpid(), nil)
	if !strings.HasSuffix(exe, "/"+self) {
		t.Fatalf("this process is program %q; its executable is %s", self, exe)
	}
	if r := rss[self]; r.Procs < 1 || r.Bytes < 1<<20 {
		t.Errorf("%s in %s: %+v; want this process, at least 1 MiB", self, cg, r)
	}
}

// ownCgroup is a cgroup directory holding this process (v2, or v1's memory hierarchy).
func ownCgroup(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		dir := ""
		switch {
		case f[0] == "0" && f[1] == "":
			dir = "/sys/fs/cgroup" + f[2]
		case strings.Contains(","+f[1]+",", ",memory,"):
			dir = "/sys/fs/cgroup/memory" + f[2]
		}
		if dir != "" {
			if _, err := os.Stat(dir + "/cgroup.procs"); err == nil {
				return dir
			}
		}
	}
	t.Skip("no cgroup directory of this process under /sys/fs/cgroup")
	return ""
}

func TestByProgram(t *testing.T) {
	got := byProgram([]processRSS{{"kubelet", 80e6}, {"containerd-shim-runc-v2", 10e6}, {"containerd", 40e6},
		{"containerd-shim-runc-v2", 12e6}, {"sample-app", 9e6}})
	want := map[string]programRSS{"kubelet": {80e6, 1}, "containerd": {40e6, 1}, "containerd-shim-runc-v2": {22e6, 2}, "sample-app": {9e6, 1}}
	if len(got) != len(want) {
		t.Errorf("byProgram = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
}

func TestRealNodeMeasurements(t *testing.T) {
	s := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
	f := realNodeRuns{
		with: []time.Duration{s(9), s(8), s(12)}, without: []time.Duration{s(4), s(5), s(4.5)},
		node: []devcluster.NodeStartTimes{{Containerd: s(0.2), Images: s(1), Ready: s(4)}, {Containerd: s(0.3), Images: s(1.2), Ready: s(3)},
			{Containerd: s(0.1), Images: s(0.9), Ready: s(5)}},
		running: []time.Duration{s(1), s(3), s(2), s(1.5)}, ready: []time.Duration{s(2), s(4), s(3), s(2.5)},
		idle: map[string]programRSS{"kubelet": {50e6, 1}, "containerd": {30e6, 1}, "canaryline": {20e6, 1}},
		busy: map[string]programRSS{"kubelet": {60e6, 1}, "containerd": {35e6, 1}, "containerd-shim-runc-v2": {40e6, 4}},
	}
	got := map[string]Measurement{}
	var order []string
	for _, m := range f.measurements() {
		got[m.Figure], order = m, append(order, m.Figure)
	}
	for _, w := range []struct {
		figure string
		value  float64
		detail string
	}{
		{"real node start: containerd to Node Ready", 4, "median of 3 cluster starts: 4.00, 3.00, 5.00 s; containerd's socket at 0.20 s, images imported at 1.00 s"},
		{"cluster start with the real node", 9, "median of 3: 9.00, 8.00, 12.00 s, interleaved with the starts without; +4.50 s over without"},
		{"cluster start without the real node", 4.5, "median of 3: 4.00, 5.00, 4.50 s"},
		{"real node pod start: create to Running", 1.75, "median of 4 sample-app pods started one after another, as seen by a watch (min 1.00, max 3.00 s)"},
		{"real node pod start: create to Ready (HTTP readiness probe every 1 s)", 2.75, "(min 2.00, max 4.00 s)"},
		{"real node RSS, idle: kubelet", 50, "Node Ready, no pods"},
		{"real node RSS, idle: containerd", 30, "Node Ready, no pods"},
		{"real node RSS, 4 pods: kubelet", 60, "the last pod Ready"},
		{"real node RSS, 4 pods: containerd", 35, "the last pod Ready"},
		{"real node RSS, 4 pods: containerd-shim-runc-v2", 40, "4 processes summed"},
	} {
		m, ok := got[w.figure]
		switch {
		case !ok:
			t.Errorf("no figure %q in %q", w.figure, order)
		case m.Value != w.value || !strings.Contains(m.Detail, w.detail):
			t.Errorf("%s: %v %s (%s); want %v and a detail with %q", w.figure, m.Value, m.Unit, m.Detail, w.value, w.detail)
		}
	}
	if len(order) != 10 {
		t.Errorf("%d figures, want 10 (no idle shims, no supervisor): %q", len(order), order)
	}
}

func TestRealNodeSkippedRow(t *testing.T) {
	tab := Table([]Measurement{realNodeSkipped(errors.New("the real node needs root")), ColdNodeBuild})
	for _, want := range []string{"| real node | skipped |  |  | skipped: the real node needs root |",
		"| real node: cold build of its binaries | 769 s |  |  | recorded"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}
