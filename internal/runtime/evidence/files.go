package evidence

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File names written by WriteFiles.
const (
	JSONFile     = "evidence.json"
	MarkdownFile = "report.md"
	SVGFile      = "chart.svg"
)

// Files are the paths WriteFiles wrote.
type Files struct {
	JSON, Markdown, SVG string
}

// WriteFiles writes evidence.json, report.md (linking chart.svg) and chart.svg into dir, creating dir if
// needed. Each file is written to a temporary file in dir and renamed into place, so a step killed half-way
// leaves either the old file, the new one or none, never half of one.
func (e *Evidence) WriteFiles(dir string) (paths Files, err error) {
	if e == nil {
		return Files{}, errors.New("evidence: nil evidence")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Files{}, fmt.Errorf("evidence: %w", err)
	}
	var js bytes.Buffer
	if err := e.WriteJSON(&js); err != nil {
		return Files{}, err
	}
	p := Files{
		JSON:     filepath.Join(dir, JSONFile),
		Markdown: filepath.Join(dir, MarkdownFile),
		SVG:      filepath.Join(dir, SVGFile),
	}
	// The record first; the chart before the report that links it.
	for _, f := range []struct {
		path string
		data []byte
	}{
		{p.JSON, js.Bytes()},
		{p.SVG, e.SVG()},
		{p.Markdown, []byte(e.Markdown(SVGFile))},
	} {
		if err := writeAtomic(f.path, f.data); err != nil {
			return Files{}, err
		}
	}
	syncDir(dir)
	return p, nil
}

// writeAtomic writes data to a temporary file next to path, flushes it to disk and renames it to path.
func writeAtomic(path string, data []byte) (err error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			err = fmt.Errorf("evidence: writing %s: %w", path, err)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// syncDir flushes the renames to disk where the platform allows it; failing to is not an error.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
