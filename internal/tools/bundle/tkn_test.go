package bundle

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseReplaces(t *testing.T) {
	got, err := parseReplaces([]byte(`module x

require a v1.0.0

replace github.com/alibabacloud-go/cr-20160607 => github.com/vdemeester/cr-20160607 v1.0.1 // fork

replace (
	// a comment
	example.com/a v1.2.3 => example.com/b v1.2.4
)
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"github.com/alibabacloud-go/cr-20160607 => github.com/vdemeester/cr-20160607 v1.0.1",
		"example.com/a v1.2.3 => example.com/b v1.2.4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseReplaces (-want +got):\n%s", diff)
	}
	if _, err := parseReplaces([]byte("replace k8s.io/api => ./staging/src/k8s.io/api\n")); err == nil ||
		!strings.Contains(err.Error(), "local directory") {
		t.Errorf("local replace: %v", err)
	}
}

func TestSumDB404(t *testing.T) {
	out := `go: github.com/tektoncd/cli@v0.43.0: verifying go.mod: github.com/tektoncd/cli@v0.43.0/go.mod: reading https://proxy.golang.org/sumdb/sum.golang.org/lookup/github.com/tektoncd/cli@v0.43.0: 404 Not Found
	github.com/tektoncd/chains/pkg/chains: github.com/tektoncd/chains@v0.26.0: verifying module: github.com/tektoncd/chains@v0.26.0: reading https://proxy.golang.org/sumdb/sum.golang.org/lookup/github.com/tektoncd/chains@v0.26.0: 404 Not Found
verifying module: example.com/x@v1.0.0: checksum mismatch`
	var got []string
	for _, m := range sumDB404.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	if diff := cmp.Diff([]string{"github.com/tektoncd/cli", "github.com/tektoncd/chains"}, got); diff != "" {
		t.Errorf("sumDB404 (-want +got):\n%s", diff)
	}
}

// TestTknBundleList reads the pushed bundle back with the real tkn CLI (tektoncd/cli TknVersion, built from the Go
// module proxy): `tkn bundle list REF` must list every Task and Pipeline, and `tkn bundle list REF KIND NAME -o yaml`
// must print each of them.
func TestTknBundleList(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tkn from the Go module proxy (about 3 min the first time)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	tkn, err := TknBinary(ctx, cacheDir(t), os.Stderr)
	if err != nil {
		t.Fatalf("build tkn %s: %v", TknVersion, err)
	}
	rs, ref := pushFixture(t, startRegistry(t))
	home := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, tkn, args...)
		// An empty home: no docker config, no kubeconfig, no ~/.tekton bundle cache from elsewhere.
		cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "KUBECONFIG="+filepath.Join(home, "kubeconfig"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tkn %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	cache := []string{"--cache-dir", filepath.Join(home, "bundles")}

	// The registry is plain HTTP on 127.0.0.1: tkn parses the reference with name.Insecure and go-containerregistry
	// talks HTTP to a loopback registry, so no TLS flag is needed.
	out := run(append([]string{"bundle", "list", ref}, cache...)...)
	t.Logf("tkn bundle list %s:\n%s", ref, out)
	lines := strings.Fields(out)
	var want []string
	for _, r := range rs {
		want = append(want, strings.ToLower(r.Kind)+".tekton.dev/"+r.Name)
	}
	if diff := cmp.Diff(sortedCopy(want), sortedCopy(lines)); diff != "" {
		t.Errorf("tkn bundle list (-want +got):\n%s", diff)
	}

	// Each resource by kind and name, and its YAML as tkn decodes it.
	for _, r := range rs {
		y := run(append([]string{"bundle", "list", ref, strings.ToLower(r.Kind), r.Name, "-o", "yaml"}, cache...)...)
		for _, w := range []string{"apiVersion: " + r.APIVersion, "kind: " + r.Kind, "name: " + r.Name} {
			if !strings.Contains(y, w) {
				t.Errorf("tkn bundle list %s %s -o yaml lacks %q:\n%s", r.Kind, r.Name, w, y)
			}
		}
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}
