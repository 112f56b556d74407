package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchPackages hold the Go benchmarks the table includes: starting and stopping the local control plane, and
// the statistics (samples to a verdict, the cost of a comparison). The step image's size is measured by Sizes.
var goBenchPackages = []string{"./internal/dev/devcluster", "./internal/runtime/stats"}

// GoBenchmarks runs the packages' Go benchmarks (5 iterations each) in root and returns their metrics.
func GoBenchmarks(ctx context.Context, root string) ([]Measurement, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchtime", "5x", "-count", "1"}, goBenchPackages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return parseGoBench(out), nil
}

// parseGoBench reads `go test -bench` output: "BenchmarkName-2  5  123 ns/op  4.5 unit ...".
func parseGoBench(out []byte) []Measurement {
	var ms []Measurement
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if unit == "ns/op" {
				v, unit = v/1e6, "ms/op"
			}
			ms = append(ms, Measurement{Figure: "Go benchmark " + name, Value: v, Unit: unit, Detail: "go test -bench " + name})
		}
	}
	return ms
}
