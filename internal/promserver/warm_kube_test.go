package promserver

import (
	"context"
	"os"
	"testing"
)

func TestWarmKubernetesBinary(t *testing.T) {
	if os.Getenv("WARM_PROM") == "" {
		t.Skip()
	}
	bin, err := KubernetesBinary(context.Background(), os.Getenv("CANARYLINE_CACHE_DIR"), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(bin)
}
