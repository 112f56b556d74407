package image

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fakeRepoMain is the command the test fixture compiles in place of the
// real cmd/canaryline-steps, so these tests do not depend on the step
// packages others write.
//
// It reports what a step would see in the container: the name it was
// invoked under, its ids, and whether $HOME and $TMPDIR (or /tmp) are
// writable and $SSL_CERT_FILE readable.
const fakeRepoMain = `package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	fmt.Printf("argv0=%s uid=%d gid=%d\n", filepath.Base(os.Args[0]), os.Getuid(), os.Getgid())
	for _, dir := range []string{os.Getenv("HOME"), os.TempDir()} {
		f, err := os.CreateTemp(dir, "probe-")
		if err != nil {
			fmt.Println("cannot write", dir, err)
			os.Exit(1)
		}
		f.Close()
		os.Remove(f.Name())
	}
	if ca := os.Getenv("SSL_CERT_FILE"); ca != "" {
		if _, err := os.ReadFile(ca); err != nil {
			fmt.Println("cannot read", ca, err)
			os.Exit(1)
		}
	}
	fmt.Println("ok")
}
`

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureRoot string
	fixtureBin  string
	fixtureErr  error
)

func TestMain(m *testing.M) {
	m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
}

// fakeRepo writes a minimal module with ./cmd/canaryline-steps under dir.
func fakeRepo(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "cmd", "canaryline-steps"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/fakesteps\n\ngo 1.26\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cmd", "canaryline-steps", "main.go"), []byte(fakeRepoMain), 0o644)
}

// staticBinary returns a fake repository root and a static linux/amd64
// binary built from it with BuildBinary, shared by the whole test binary.
func staticBinary(t *testing.T) (repoRoot, binary string) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "canaryline-image-test-")
		if fixtureErr != nil {
			return
		}
		fixtureRoot = filepath.Join(fixtureDir, "repo")
		if fixtureErr = fakeRepo(fixtureRoot); fixtureErr != nil {
			return
		}
		fixtureBin = filepath.Join(fixtureDir, "out", "canaryline-steps")
		fixtureErr = BuildBinary(t.Context(), fixtureRoot, fixtureBin)
	})
	if fixtureErr != nil {
		t.Fatalf("build fixture binary: %v", fixtureErr)
	}
	return fixtureRoot, fixtureBin
}

// writeFile writes data to a new file in a test temp dir.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

var (
	caOnce sync.Once
	caPEM  []byte
	caErr  error
)

// testCABundle returns a PEM bundle with one freshly generated self-signed
// certificate (the same bytes for the whole test binary, so builds from it
// are comparable).
func testCABundle(t *testing.T) []byte {
	t.Helper()
	caOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			caErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "canaryline test CA"},
			NotBefore:             time.Unix(0, 0),
			NotAfter:              time.Unix(0, 0).Add(100 * 365 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			caErr = err
			return
		}
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
	if caErr != nil {
		t.Fatalf("generate test CA: %v", caErr)
	}
	return caPEM
}

// tarEntry is what the tests compare of a layer tar header.
type tarEntry struct {
	Name     string
	Type     byte
	Mode     os.FileMode
	UID, GID int
	Linkname string
	Size     int64
	ModTime  time.Time
}

// readLayer lists the entries of the single layer of img and returns the
// contents of its regular files by name.
func readLayer(t *testing.T, img v1.Image) ([]tarEntry, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("list layers: %v", err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatalf("open layer: %v", err)
	}
	defer rc.Close()
	var entries []tarEntry
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer tar: %v", err)
		}
		entries = append(entries, tarEntry{
			Name: hdr.Name, Type: hdr.Typeflag, Mode: hdr.FileInfo().Mode(),
			UID: hdr.Uid, GID: hdr.Gid, Linkname: hdr.Linkname, Size: hdr.Size, ModTime: hdr.ModTime.UTC(),
		})
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s: %v", hdr.Name, err)
			}
			files[hdr.Name] = b
		}
	}
	return entries, files
}
