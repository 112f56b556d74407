package image

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// newRegistry starts an in-process OCI registry on 127.0.0.1 and returns its
// host:port.
func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestPushAndPullBack(t *testing.T) {
	t.Parallel()
	host := newRegistry(t)
	opts := buildOpts(t)
	opts.Ref = host + "/canaryline/steps:v0.1.0"
	report, err := Build(t.Context(), opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}

	tests := []struct {
		name string
		push func() (string, error) // returns the ref to pull
	}{
		{
			name: "image",
			push: func() (string, error) {
				img, err := NewImage(opts)
				if err != nil {
					return "", err
				}
				ref := host + "/canaryline/steps:from-image"
				d, err := Push(t.Context(), img, ref)
				if err == nil && d != report.Digest {
					t.Errorf("Push returned digest %s, want %s", d, report.Digest)
				}
				return ref, err
			},
		},
		{
			name: "layout with explicit ref",
			push: func() (string, error) {
				ref := host + "/other/repo:explicit"
				_, err := PushLayout(t.Context(), opts.LayoutDir, ref)
				return ref, err
			},
		},
		{
			name: "layout with recorded ref",
			push: func() (string, error) {
				_, err := PushLayout(t.Context(), opts.LayoutDir, "")
				return opts.Ref, err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ref, err := tt.push()
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			r, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			pulled, err := remote.Image(r, remote.WithContext(t.Context()))
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			d, err := pulled.Digest()
			if err != nil || d != report.Digest {
				t.Fatalf("pulled digest = %s (%v), want %s", d, err, report.Digest)
			}
			got, err := Size(pulled)
			if err != nil {
				t.Fatalf("measure pulled image: %v", err)
			}
			want := report
			want.Ref = ""
			if got != want {
				t.Fatalf("pulled image measures %+v, want %+v", got, want)
			}
		})
	}
}

func TestPushErrors(t *testing.T) {
	t.Parallel()
	img, err := NewImage(Options{BinaryPath: writeFile(t, "bin", []byte("x")), CABundlePath: writeFile(t, "ca.crt", testCABundle(t))})
	if err != nil {
		t.Fatal(err)
	}
	layoutNoRef := t.TempDir()
	if err := WriteLayout(layoutNoRef, img, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		push func() error
		want string
	}{
		{
			name: "bad reference",
			push: func() error { _, err := Push(t.Context(), img, "UPPER/case:x"); return err },
			want: "parse image reference",
		},
		{
			name: "registry not listening",
			push: func() error {
				srv := httptest.NewServer(registry.New())
				host := strings.TrimPrefix(srv.URL, "http://")
				srv.Close()
				_, err := Push(t.Context(), img, host+"/steps:x")
				return err
			},
			want: "push to 127.0.0.1:",
		},
		{
			name: "layout without recorded ref",
			push: func() error { _, err := PushLayout(t.Context(), layoutNoRef, ""); return err },
			want: "no reference given and none recorded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.push(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
