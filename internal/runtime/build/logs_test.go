package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	buildv1 "github.com/openshift/api/build/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/canaryline/canaryline/internal/runtime/osclient"
)

// fakeLogServer serves builds/b/log like the build API: timestamped lines, sinceTime at second precision, and it
// breaks the first connections after a few lines. The build is Complete once all lines were served.
type fakeLogServer struct {
	mu        sync.Mutex
	lines     []string
	times     []time.Time
	breakLeft int
	breakAt   int
	conns     []string // the sinceTime of each connection
	plain     bool     // send no timestamps
}

func (s *fakeLogServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !strings.HasSuffix(r.URL.Path, "/log") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&buildv1.Build{TypeMeta: metav1.TypeMeta{APIVersion: "build.openshift.io/v1", Kind: "Build"},
			ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: buildv1.BuildStatus{Phase: buildv1.BuildPhaseComplete}})
		return
	}
	since := time.Time{}
	if v := r.URL.Query().Get("sinceTime"); v != "" {
		since, _ = time.Parse(time.RFC3339, v)
	}
	s.conns = append(s.conns, r.URL.Query().Get("sinceTime"))
	n := 0
	for i, l := range s.lines {
		if s.times[i].Before(since) {
			continue
		}
		if s.breakLeft > 0 && n == s.breakAt {
			s.breakLeft--
			panic(http.ErrAbortHandler) // drop the connection mid-stream
		}
		if s.plain {
			fmt.Fprintln(w, l)
		} else {
			fmt.Fprintln(w, s.times[i].Format(time.RFC3339Nano)+" "+l)
		}
		w.(http.Flusher).Flush()
		n++
	}
}

func TestLogFollowerResumesWithoutRepeats(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		times   func(i int) time.Time
		breaks  int
		breakAt int
		plain   bool
	}{
		{"distinct times", func(i int) time.Time { return base.Add(time.Duration(i) * 300 * time.Millisecond) }, 3, 4, false},
		{"many lines within a second", func(i int) time.Time { return base.Add(time.Duration(i) * 10 * time.Millisecond) }, 4, 7, false},
		{"identical timestamps", func(i int) time.Time { return base.Add(time.Duration(i/5) * time.Second) }, 3, 3, false},
		{"no timestamps from the server", func(i int) time.Time { return base }, 2, 5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := &fakeLogServer{breakLeft: tc.breaks, breakAt: tc.breakAt, plain: tc.plain}
			for i := range 25 {
				srv.lines = append(srv.lines, fmt.Sprintf("line %02d", i))
				srv.times = append(srv.times, tc.times(i))
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			c, err := osclient.NewBuildV1ForConfig(&rest.Config{Host: hs.URL})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			f := &logFollower{builds: c, ns: "ns", name: "b", out: &out, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			f.follow(ctx)
			want := strings.Join(srv.lines, "\n") + "\n"
			if out.String() != want {
				t.Errorf("printed:\n%s\nwant:\n%s", out.String(), want)
			}
			if len(srv.conns) != tc.breaks+1 {
				t.Errorf("%d connections (%v); want %d", len(srv.conns), srv.conns, tc.breaks+1)
			}
		})
	}
}

func TestSplitTimestamp(t *testing.T) {
	t.Parallel()
	ts, text, ok := splitTimestamp("2026-05-01T10:00:00.123456789Z STEP 1/3: FROM golang")
	if !ok || text != "STEP 1/3: FROM golang" || ts.Nanosecond() != 123456789 {
		t.Errorf("got %v %q %v", ts, text, ok)
	}
	if _, text, ok := splitTimestamp("no timestamp here"); ok || text != "no timestamp here" {
		t.Errorf("got %q %v", text, ok)
	}
	if _, text, ok := splitTimestamp("2026-05-01T10:00:00Z"); !ok || text != "" {
		t.Errorf("empty line: %q %v", text, ok)
	}
}
