package image

import (
	"path/filepath"
	"testing"
)

// BenchmarkStepImage builds the real step image from this repository and reports its sizes: the multi-call
// binary and the whole image, uncompressed and compressed (budget: 32 MB uncompressed).
func BenchmarkStepImage(b *testing.B) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		b.Fatal(err)
	}
	var rep Report
	for range b.N {
		rep, err = Build(b.Context(), Options{RepoRoot: root})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rep.BinaryBytes)/1e6, "binary-MB")
	b.ReportMetric(float64(rep.UncompressedBytes)/1e6, "image-MB")
	b.ReportMetric(float64(rep.CompressedBytes)/1e6, "compressed-MB")
}
