package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseGoBench(t *testing.T) {
	out := []byte("goos: linux\nBenchmarkClusterStart-2   \t       5\t3512345678 ns/op\t         1.10 stop-s\nPASS\n")
	ms := parseGoBench(out)
	if len(ms) != 2 || ms[0].Figure != "Go benchmark ClusterStart" || ms[0].Unit != "ms/op" || ms[0].Value != 3512.345678 ||
		ms[1].Unit != "stop-s" || ms[1].Value != 1.1 {
		t.Errorf("parsed %+v", ms)
	}
}

func TestTableAndMissed(t *testing.T) {
	ms := []Measurement{
		{Figure: "a", Value: 31.7, Unit: "MB", Target: "≤ 32 MB", Met: met(true)},
		{Figure: "b", Value: 12.345, Unit: "s", Target: "≤ 10 s", Met: met(false), Detail: "x|y"},
		{Figure: "c", Value: 3, Unit: "ms"},
		{Figure: "d", Skipped: true, Detail: "skipped: needs root"},
	}
	tab := Table(ms)
	for _, want := range []string{"| a | 31.70 MB | ≤ 32 MB | yes |", "| b | 12.3 s | ≤ 10 s | **NO** | x/y |", "| c | 3.00 ms |  |  |  |",
		"| d | skipped |  |  | skipped: needs root |"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if got := Missed(ms); len(got) != 1 || got[0] != "b" {
		t.Errorf("missed %v", got)
	}
}

func TestPercentileOf(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 20; i++ {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	if p := percentileOf(ds, 50); p != 10*time.Second {
		t.Errorf("p50 %s", p)
	}
	if p := percentileOf(ds, 95); p != 19*time.Second {
		t.Errorf("p95 %s", p)
	}
}
