package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/canaryline/canaryline/internal/runtime/steps"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// passwd and group are the image's account database: root, nobody, and the
// non-root user the steps run as. Its primary group is root (gid 0), the
// group OpenShift gives arbitrary UIDs, so that both own the home directory.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"canaryline:x:65532:0:canaryline:/home/canaryline:/sbin/nologin\n"
	group = "root:x:0:\n" +
		"nobody:x:65534:\n"
)

// entry is one file system object of the layer.
type entry struct {
	name     string // absolute path in the image
	typeflag byte   // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode     int64  // permission bits, including sticky
	uid, gid int
	linkname string
	data     []byte
}

// rootFS lists the layer's contents: parent directories, the multi-call
// binary, one symlink per step, the CA bundle, passwd/group, /tmp and the
// home directory.
func rootFS(binary, caBundle []byte, stepNames []string) []entry {
	es := []entry{
		dir("/etc", 0o755, 0),
		{name: "/etc/passwd", typeflag: tar.TypeReg, mode: 0o644, data: []byte(passwd)},
		{name: "/etc/group", typeflag: tar.TypeReg, mode: 0o644, data: []byte(group)},
		dir("/etc/ssl", 0o755, 0),
		dir("/etc/ssl/certs", 0o755, 0),
		{name: CABundleFile, typeflag: tar.TypeReg, mode: 0o644, data: caBundle},
		dir("/home", 0o755, 0),
		dir(HomeDir, 0o775, UID),
		dir("/tmp", 0o1777, 0),
		dir("/usr", 0o755, 0),
		dir("/usr/local", 0o755, 0),
		dir(BinDir, 0o755, 0),
		{name: EntrypointPath, typeflag: tar.TypeReg, mode: 0o555, data: binary},
	}
	for _, n := range stepNames {
		es = append(es, entry{name: BinDir + "/" + n, typeflag: tar.TypeSymlink, mode: 0o777, linkname: steps.MultiCallName})
	}
	return es
}

func dir(name string, mode int64, uid int) entry {
	return entry{name: name, typeflag: tar.TypeDir, mode: mode, uid: uid, gid: GID}
}

// tarName is the name of e in the archive: relative, and with a trailing
// slash for directories, as docker and buildkit write them.
func (e entry) tarName() string {
	n := strings.TrimPrefix(e.name, "/")
	if e.typeflag == tar.TypeDir {
		n += "/"
	}
	return n
}

// writeTar writes the entries sorted by name (a parent sorts before its
// children), all with modification time mtime and numeric owners only.
func writeTar(w io.Writer, entries []entry, mtime time.Time) error {
	es := slices.Clone(entries)
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.tarName(), b.tarName()) })
	tw := tar.NewWriter(w)
	for i, e := range es {
		if i > 0 && es[i-1].tarName() == e.tarName() {
			return fmt.Errorf("write layer tar: duplicate entry %s", e.name)
		}
		hdr := &tar.Header{
			Typeflag: e.typeflag,
			Name:     e.tarName(),
			Linkname: e.linkname,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  mtime,
			Format:   tar.FormatPAX,
		}
		if e.typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write layer tar header %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return fmt.Errorf("write layer tar entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close layer tar: %w", err)
	}
	return nil
}

// newLayer builds the layer in memory as a gzip-compressed OCI layer.
func newLayer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, entries, mtime); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching,
	)
	if err != nil {
		return nil, fmt.Errorf("create layer: %w", err)
	}
	return layer, nil
}
