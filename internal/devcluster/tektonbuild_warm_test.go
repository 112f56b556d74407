package devcluster

import (
	"context"
	"os"
	"testing"
)

func TestWarmTektonBuild(t *testing.T) {
	if os.Getenv("WARM_TEKTON") == "" {
		t.Skip()
	}
	b, err := EnsureTektonBinaries(context.Background(), os.Getenv("CANARYLINE_CACHE_DIR"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(b)
}
