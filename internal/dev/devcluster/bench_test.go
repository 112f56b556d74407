package devcluster

import (
	"context"
	"io"
	"testing"
	"time"
)

// BenchmarkClusterStart measures starting the control plane from cached binaries until two KWOK nodes are Ready
// and the shim answers (start-s), and stopping it (stop-s). The first iteration builds the binaries if the cache
// has none; run `make controlplane` first.
func BenchmarkClusterStart(b *testing.B) {
	cacheDir, err := DefaultCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Prepare(context.Background(), cacheDir, DefaultVersions, io.Discard); err != nil {
		b.Fatal(err)
	}
	var start, stop time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		c, err := Start(context.Background(), Options{CacheDir: cacheDir, Log: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c.Stop()
		start += t1.Sub(t0)
		stop += time.Since(t1)
	}
	b.ReportMetric(start.Seconds()/float64(b.N), "start-s")
	b.ReportMetric(stop.Seconds()/float64(b.N), "stop-s")
}
