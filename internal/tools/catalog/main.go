package catalog

import (
	"fmt"
	"io"
	"strings"
)

// StaleError is Sync's answer when, asked only to check, it finds catalog files stale, missing or extra.
type StaleError struct{ Files int }

func (e *StaleError) Error() string {
	return fmt.Sprintf("%d catalog files are stale, missing or extra: run `canaryline catalog generate`", e.Files)
}

// Sync generates the catalog from o (Generate) and writes what differs under o.Root (Write), printing each file it
// updated, added or removed and a count to out. With check it changes nothing: it lists the differing files on out
// and returns a *StaleError when there are any.
func Sync(o Options, check bool, out io.Writer) error {
	files, err := Generate(o)
	if err != nil {
		return err
	}
	diff, err := Diff(o.Root, files)
	if err != nil {
		return err
	}
	if check {
		return reportStale(files, diff, out)
	}
	if err := Write(o.Root, files); err != nil {
		return err
	}
	done := map[string]string{"stale": "updated", "missing": "added", "extra": "removed"}
	for _, d := range diff {
		what, file, _ := strings.Cut(d, " ")
		fmt.Fprintln(out, done[what], file)
	}
	fmt.Fprintf(out, "catalog: %d files, %d changed\n", len(files), len(diff))
	return nil
}

// reportStale lists diff on out, or says that the catalog is current.
func reportStale(files map[string][]byte, diff []string, out io.Writer) error {
	if len(diff) == 0 {
		fmt.Fprintf(out, "catalog is current (%d files)\n", len(files))
		return nil
	}
	for _, d := range diff {
		fmt.Fprintln(out, d)
	}
	return &StaleError{Files: len(diff)}
}
