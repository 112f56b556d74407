// Package repo checks what the repository tracks: sources and small generated files, never build outputs.
package repo

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const root = "../.."

// maxTracked is the largest file the repository may track.
const maxTracked = 1 << 20

// TestNoLargeFileOrBinaryIsTracked fails when git tracks a file over 1 MB or an ELF binary (a build output such
// as a `go build` at the repository root). Build outputs go to _output/, which .gitignore keeps out.
func TestNoLargeFileOrBinaryIsTracked(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git checkout")
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := bytes.Split(bytes.TrimRight(out, "\x00"), []byte{0})
	if len(files) < 10 {
		t.Fatalf("git ls-files lists %d files; the repository has more", len(files))
	}
	for _, f := range files {
		name := string(f)
		path := filepath.Join(root, name)
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		if fi.Size() > maxTracked {
			t.Errorf("%s is tracked and is %d bytes (over 1 MB): build outputs go to _output/; git rm --cached it", name, fi.Size())
		}
		if isELF(t, path) {
			t.Errorf("%s is tracked and is an ELF binary: build outputs go to _output/; git rm --cached it", name)
		}
	}
}

func isELF(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		return false
	}
	return bytes.Equal(magic, []byte("\x7fELF"))
}
