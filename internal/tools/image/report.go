package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	pathpkg "path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Report measures a step image.
type Report struct {
	// Ref is the recorded image reference (AnnotationRefName), if known.
	Ref string
	// Digest is the digest of the image manifest.
	Digest v1.Hash
	// Platform is os/arch[/variant] from the image config.
	Platform string
	// Layers is the number of layers.
	Layers int
	// UncompressedBytes is the sum of the layers' uncompressed tar sizes:
	// what the image occupies once pulled and unpacked, give or take
	// file system overhead.
	UncompressedBytes int64
	// CompressedBytes is the sum of the layer blob sizes as stored and
	// pushed.
	CompressedBytes int64
	// BinaryBytes is the size of EntrypointPath, or 0 if the image has none.
	BinaryBytes int64
}

// String formats the report on one line, sizes in bytes and MB.
func (r Report) String() string {
	ref := r.Ref
	if ref == "" {
		ref = "(no ref)"
	}
	return fmt.Sprintf("%s %s %s: %d layer(s), uncompressed %s, compressed %s, binary %s",
		ref, r.Platform, r.Digest, r.Layers, mb(r.UncompressedBytes), mb(r.CompressedBytes), mb(r.BinaryBytes))
}

func mb(n int64) string { return fmt.Sprintf("%d B (%.2f MB)", n, float64(n)/1e6) }

// Size measures img: it reads every layer's uncompressed tar stream to count
// its bytes and to find the size of the multi-call binary.
func Size(img v1.Image) (Report, error) {
	var r Report
	d, err := img.Digest()
	if err != nil {
		return r, fmt.Errorf("compute image digest: %w", err)
	}
	r.Digest = d
	cfg, err := img.ConfigFile()
	if err != nil {
		return r, fmt.Errorf("read image config: %w", err)
	}
	if p := cfg.Platform(); p != nil {
		r.Platform = p.String()
	}
	layers, err := img.Layers()
	if err != nil {
		return r, fmt.Errorf("list image layers: %w", err)
	}
	r.Layers = len(layers)
	for i, l := range layers {
		c, err := l.Size()
		if err != nil {
			return r, fmt.Errorf("read size of layer %d: %w", i, err)
		}
		r.CompressedBytes += c
		u, bin, err := measureLayer(l)
		if err != nil {
			return r, fmt.Errorf("measure layer %d: %w", i, err)
		}
		r.UncompressedBytes += u
		if bin >= 0 {
			r.BinaryBytes = bin
		}
	}
	return r, nil
}

// measureLayer returns the uncompressed size of l and the size of the
// multi-call binary in it (-1 when absent).
func measureLayer(l v1.Layer) (size, binary int64, err error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, 0, fmt.Errorf("open uncompressed layer: %w", err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	binary = -1
	want := strings.TrimPrefix(EntrypointPath, "/")
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("read layer tar: %w", err)
		}
		if strings.TrimPrefix(pathpkg.Clean("/"+hdr.Name), "/") == want && hdr.Typeflag == tar.TypeReg {
			binary = hdr.Size
		}
	}
	// The tar reader stops at the end-of-archive marker; count the rest.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return 0, 0, fmt.Errorf("read layer tar: %w", err)
	}
	return cr.n, binary, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ReadLayoutReport measures the single image of the OCI layout at dir.
func ReadLayoutReport(dir string) (Report, error) {
	img, desc, err := layoutImage(dir)
	if err != nil {
		return Report{}, err
	}
	r, err := Size(img)
	if err != nil {
		return r, fmt.Errorf("measure image in layout %s: %w", dir, err)
	}
	r.Ref = desc.Annotations[AnnotationRefName]
	return r, nil
}

// layoutEntry opens the OCI layout at dir and returns it with the descriptor of its one entry.
func layoutEntry(dir string) (v1.ImageIndex, v1.Descriptor, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("open OCI layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("read index of OCI layout %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return nil, v1.Descriptor{}, fmt.Errorf("read index of OCI layout %s: %d manifests, want exactly one image", dir, len(im.Manifests))
	}
	return idx, im.Manifests[0], nil
}

// layoutImage opens the one image an OCI layout written by Build holds.
func layoutImage(dir string) (v1.Image, v1.Descriptor, error) {
	idx, desc, err := layoutEntry(dir)
	if err != nil {
		return nil, desc, err
	}
	if desc.MediaType != types.OCIManifestSchema1 && desc.MediaType != types.DockerManifestSchema2 {
		return nil, desc, fmt.Errorf("read index of OCI layout %s: manifest %s has media type %s, want an image", dir, desc.Digest, desc.MediaType)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		return nil, desc, fmt.Errorf("open image %s in OCI layout %s: %w", desc.Digest, dir, err)
	}
	return img, desc, nil
}

// FileContents returns the regular file at path (such as EntrypointPath) from img's layers, the last layer that
// holds it winning.
func FileContents(img v1.Image, path string) ([]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list image layers: %w", err)
	}
	want := strings.TrimPrefix(pathpkg.Clean("/"+path), "/")
	var found []byte
	for i, l := range layers {
		b, err := layerFile(l, want)
		if err != nil {
			return nil, fmt.Errorf("read layer %d: %w", i, err)
		}
		if b != nil {
			found = b
		}
	}
	if found == nil {
		return nil, fmt.Errorf("read image: no file %s", path)
	}
	return found, nil
}

// layerFile is the regular file name (without a leading slash) of layer l, or nil.
func layerFile(l v1.Layer, name string) ([]byte, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimPrefix(pathpkg.Clean("/"+hdr.Name), "/") == name && hdr.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}
