package catalog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteThenDiffIsEmpty(t *testing.T) {
	t.Parallel()
	for _, tc := range testRoots {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := tc.root(t)
			files := generate(t, root)
			diff, err := Diff(root, files)
			if err != nil {
				t.Fatal(err)
			}
			if len(diff) != len(files) {
				t.Errorf("Diff before Write lists %d files, want all %d missing: %v", len(diff), len(files), diff)
			}
			for _, d := range diff {
				if !strings.HasPrefix(d, "missing catalog/") {
					t.Errorf("Diff before Write: %q, want missing", d)
				}
			}
			if err := Write(root, files); err != nil {
				t.Fatal(err)
			}
			if diff, err := Diff(root, files); err != nil || len(diff) != 0 {
				t.Fatalf("Diff after Write = %v, %v; want nothing", diff, err)
			}
			for p, want := range files {
				got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: not written (%v)", p, err)
				}
			}
			// No temporary files are left behind.
			if diff := cmp.Diff(len(files), len(hashTree(t, filepath.Join(root, Dir)))); diff != "" {
				t.Errorf("files under catalog/ (-generated +on disk):\n%s", diff)
			}
		})
	}
}

func TestDiffAndRewrite(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, nil)
	files := generate(t, root)
	// The old catalog README and an input are there before the first Write.
	writeTestFile(t, filepath.Join(root, "catalog", "README.md"), "# catalog\n\nhand written\n")
	writeTestFile(t, filepath.Join(root, "catalog", DigestFile), testDigest+"\n")
	if err := Write(root, files); err != nil {
		t.Fatal(err)
	}

	changed := "catalog/task/alpha/0.1/README.md"
	missing := "catalog/task/beta/0.1/samples/beta-run.yaml"
	extras := []string{"catalog/task/gamma/0.1/gamma.yaml", "catalog/task/alpha/0.1/samples/old-run.yaml", "catalog/notes.txt"}
	writeTestFile(t, filepath.Join(root, filepath.FromSlash(changed)), "edited by hand\n")
	if err := os.Remove(filepath.Join(root, filepath.FromSlash(missing))); err != nil {
		t.Fatal(err)
	}
	for _, e := range extras {
		writeTestFile(t, filepath.Join(root, filepath.FromSlash(e)), "stale\n")
	}

	diff, err := Diff(root, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"extra catalog/notes.txt",
		"stale " + changed,
		"extra catalog/task/alpha/0.1/samples/old-run.yaml",
		"missing " + missing,
		"extra catalog/task/gamma/0.1/gamma.yaml",
	}
	if d := cmp.Diff(want, diff); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}

	// Unchanged files keep their modification time: Write replaces only what differs.
	unchanged := filepath.Join(root, "catalog", "task", "beta", "0.1", "beta.yaml")
	before, err := os.Stat(unchanged)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(root, files); err != nil {
		t.Fatal(err)
	}
	if diff, err := Diff(root, files); err != nil || len(diff) != 0 {
		t.Fatalf("Diff after the second Write = %v, %v; want nothing", diff, err)
	}
	if after, err := os.Stat(unchanged); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("an unchanged file was rewritten (%v)", err)
	}
	for _, gone := range []string{"catalog/task/gamma", "catalog/notes.txt"} {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(gone))); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "catalog", DigestFile)); err != nil || string(b) != testDigest+"\n" {
		t.Errorf("catalog/IMAGE_DIGEST = %q, %v; want it kept", b, err)
	}
}

func TestWriteReplacesConflicts(t *testing.T) {
	t.Parallel()
	root := fixtureRoot(t, nil)
	files := generate(t, root)
	// A file where a directory goes, and a directory where a file goes.
	writeTestFile(t, filepath.Join(root, "catalog", "task", "alpha"), "a file\n")
	writeTestFile(t, filepath.Join(root, "catalog", "README.md", "x"), "a dir\n")
	diff, err := Diff(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"missing catalog/README.md", "extra catalog/task/alpha", "extra catalog/README.md/x"} {
		if !strings.Contains(strings.Join(diff, "\n"), want) {
			t.Errorf("Diff = %v; want %q", diff, want)
		}
	}
	if err := Write(root, files); err != nil {
		t.Fatal(err)
	}
	if diff, err := Diff(root, files); err != nil || len(diff) != 0 {
		t.Fatalf("Diff after Write = %v, %v; want nothing", diff, err)
	}
}

func TestWriteRefusesPaths(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"tasks/x.yaml", "catalog/../x", "/catalog/x", "catalog/" + DigestFile, "catalog//x"} {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			files := map[string][]byte{p: []byte("x")}
			if err := Write(root, files); err == nil {
				t.Errorf("Write(%q) succeeded", p)
			}
			if _, err := Diff(root, files); err == nil {
				t.Errorf("Diff(%q) succeeded", p)
			}
		})
	}
}
