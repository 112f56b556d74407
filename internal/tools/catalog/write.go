package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Write makes root/catalog exactly the generated tree: files whose content changed are replaced atomically (a
// temporary file in the same directory, renamed over the old one), unchanged files are left alone, and every other
// file under catalog/ is removed, with the directories left empty, except catalog/IMAGE_DIGEST (an input).
func Write(root string, files map[string][]byte) error {
	if err := checkPaths(files); err != nil {
		return err
	}
	dir := filepath.Join(root, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range sortedKeys(files) {
		if err := writeFile(root, p, files[p]); err != nil {
			return err
		}
	}
	// Remove what is not generated, then the directories that became empty (deepest first).
	var dirs []string
	err := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := relSlash(root, file)
		if d.IsDir() {
			if file != dir {
				dirs = append(dirs, file)
			}
			return nil
		}
		if _, ok := files[rel]; ok || rel == path.Join(Dir, DigestFile) {
			return nil
		}
		return os.Remove(file)
	})
	if err != nil {
		return fmt.Errorf("remove stale catalog files: %w", err)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if entries, err := os.ReadDir(d); err == nil && len(entries) == 0 {
			if err := os.Remove(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFile writes one file atomically unless it already has the content.
func writeFile(root, p string, content []byte) error {
	file := filepath.Join(root, filepath.FromSlash(p))
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, content) {
		return nil
	}
	// Clear what is in the way: a file where a directory is needed, a directory where the file goes.
	for d := filepath.Dir(file); len(d) > len(filepath.Join(root, Dir)); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err == nil && !fi.IsDir() {
			if err := os.Remove(d); err != nil {
				return err
			}
		}
	}
	if fi, err := os.Lstat(file); err == nil && fi.IsDir() {
		if err := os.RemoveAll(file); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// Diff compares the generated tree with root/catalog and lists, sorted by path, "stale PATH" (the content
// differs), "missing PATH" (not on disk) and "extra PATH" (on disk, not generated; catalog/IMAGE_DIGEST is an
// input and never extra). An empty list means the catalog is current.
func Diff(root string, files map[string][]byte) ([]string, error) {
	if err := checkPaths(files); err != nil {
		return nil, err
	}
	type entry struct{ path, what string }
	var out []entry
	for _, p := range sortedKeys(files) {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(p)))
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || isDirErr(root, p):
			out = append(out, entry{p, "missing"})
		case err != nil:
			return nil, err
		case !bytes.Equal(b, files[p]):
			out = append(out, entry{p, "stale"})
		}
	}
	dir := filepath.Join(root, Dir)
	err := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && file == dir {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel := relSlash(root, file)
		if _, ok := files[rel]; !ok && rel != path.Join(Dir, DigestFile) {
			out = append(out, entry{rel, "extra"})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	list := make([]string, len(out))
	for i, e := range out {
		list[i] = e.what + " " + e.path
	}
	return list, nil
}

// isDirErr reports whether a generated path is a directory on disk (so the file is missing).
func isDirErr(root, p string) bool {
	fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
	return err == nil && fi.IsDir()
}

// checkPaths refuses paths outside catalog/ and the input file.
func checkPaths(files map[string][]byte) error {
	for p := range files {
		if p != path.Clean(p) || !strings.HasPrefix(p, Dir+"/") || strings.Contains(p, "\\") {
			return fmt.Errorf("catalog file %q: want a clean slash path under %s/", p, Dir)
		}
		if p == path.Join(Dir, DigestFile) {
			return fmt.Errorf("catalog file %q is an input: it is never generated", p)
		}
	}
	return nil
}

func relSlash(root, file string) string {
	rel, err := filepath.Rel(root, file)
	if err != nil {
		return file
	}
	return filepath.ToSlash(rel)
}

// sortedKeys are a tree's paths in order.
func sortedKeys(files map[string][]byte) []string {
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
