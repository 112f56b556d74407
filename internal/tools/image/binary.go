package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// StepsPackage is the package BuildBinary compiles, relative to the module
// root.
const StepsPackage = "./cmd/canaryline-steps"

// commandRunner runs a command and returns its combined output; tests swap
// it to see the exact go build invocation.
type commandRunner interface {
	Run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error)
}

type execRunner struct{}

func (execRunner) Run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	return cmd.CombinedOutput()
}

// BuildBinary compiles ./cmd/canaryline-steps in the module at repoRoot
// into out as a static, stripped linux/amd64 executable:
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags="-s -w -buildid=" -o out ./cmd/canaryline-steps
func BuildBinary(ctx context.Context, repoRoot, out string) error {
	return BuildBinaryFor(ctx, repoRoot, out, DefaultPlatform)
}

// BuildBinaryFor is BuildBinary for another linux platform, such as
// "linux/arm64" or "linux/arm/v7".
func BuildBinaryFor(ctx context.Context, repoRoot, out, platform string) error {
	return buildBinary(ctx, execRunner{}, repoRoot, out, platform)
}

func buildBinary(ctx context.Context, r commandRunner, repoRoot, out, platform string) error {
	env, err := goEnv(platform)
	if err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("resolve binary output path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(absOut), 0o755); err != nil {
		return fmt.Errorf("create binary output directory: %w", err)
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", absOut, StepsPackage}
	output, err := r.Run(ctx, repoRoot, append(os.Environ(), env...), "go", args...)
	if err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", StepsPackage, platform, err, bytes.TrimSpace(output))
	}
	return nil
}

// goEnv is the environment that makes go build target platform statically.
func goEnv(platform string) ([]string, error) {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, fmt.Errorf("parse platform %q: %w", platform, err)
	}
	if p.OS != "linux" || p.Architecture == "" {
		return nil, fmt.Errorf("parse platform %q: want linux/ARCH[/VARIANT]", platform)
	}
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + p.Architecture}
	switch {
	case p.Variant == "":
	case p.Architecture == "arm":
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	case p.Architecture == "amd64":
		env = append(env, "GOAMD64="+p.Variant)
	case p.Architecture == "arm64":
		env = append(env, "GOARM64="+p.Variant+".0")
	default:
		return nil, fmt.Errorf("parse platform %q: variant %q of %s is not supported", platform, p.Variant, p.Architecture)
	}
	return env, nil
}

// elfMachines maps GOARCH names to their ELF machine and byte order.
var elfMachines = map[string]struct {
	machine elf.Machine
	order   binary.ByteOrder
}{
	"386":     {elf.EM_386, binary.LittleEndian},
	"amd64":   {elf.EM_X86_64, binary.LittleEndian},
	"arm":     {elf.EM_ARM, binary.LittleEndian},
	"arm64":   {elf.EM_AARCH64, binary.LittleEndian},
	"ppc64le": {elf.EM_PPC64, binary.LittleEndian},
	"riscv64": {elf.EM_RISCV, binary.LittleEndian},
	"s390x":   {elf.EM_S390, binary.BigEndian},
}

// ErrNotStatic is returned (wrapped) by CheckBinary for a dynamically linked
// executable, which cannot run in the scratch-based step image.
var ErrNotStatic = errors.New("binary is dynamically linked")

// CheckBinary verifies that path is an ELF executable for platform without
// a program interpreter, i.e. one that runs in an image with no libc.
func CheckBinary(path, platform string) error {
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return fmt.Errorf("parse platform %q: %w", platform, err)
	}
	want, ok := elfMachines[p.Architecture]
	if p.OS != "linux" || !ok {
		return fmt.Errorf("check binary %s: platform %q is not supported", path, platform)
	}
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("check binary: %w", err)
	}
	defer file.Close()
	f, err := elf.NewFile(file)
	if err != nil {
		return fmt.Errorf("check binary %s: not an ELF executable: %w", path, err)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("check binary %s: ELF type %s is not an executable", path, f.Type)
	}
	if f.Machine != want.machine || f.ByteOrder != want.order {
		return fmt.Errorf("check binary %s: built for %s (%s), want %s", path, f.Machine, f.ByteOrder, platform)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			interp, _ := readInterp(prog)
			return fmt.Errorf("check binary %s: %w (interpreter %q); build it with CGO_ENABLED=0", path, ErrNotStatic, interp)
		}
	}
	return nil
}

func readInterp(prog *elf.Prog) (string, error) {
	b := make([]byte, prog.Filesz)
	if _, err := prog.ReadAt(b, 0); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b, "\x00")), nil
}

// Emulator is the path of a qemu user emulator (qemu-ARCH-static or qemu-ARCH, Debian's qemu-user) that runs
// linux binaries of the GOARCH arch on this machine, or "" when none is installed.
func Emulator(arch string) string {
	q := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[arch]
	if q == "" {
		q = arch
	}
	for _, n := range []string{"qemu-" + q + "-static", "qemu-" + q} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}
