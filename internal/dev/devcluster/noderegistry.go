package devcluster

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/canaryline/canaryline/internal/tools/image"
)

// OpenShiftRegistry is the host of OpenShift's internal image registry, where builds push. On the real node it is
// answered by the node's registry: containerd is configured to pull it from there, so images that the build
// simulator reports as built run for real.
const OpenShiftRegistry = "image-registry.openshift-image-registry.svc:5000"

// startNodeRegistry serves an OCI registry (go-containerregistry's, in memory) at the node's registry address
// inside its network namespace: the stand-in for OpenShift's internal registry, and any image registry a test
// pushes to. Nothing outside the node's namespace can reach it but through RealNode.Dial.
func (n *RealNode) startNodeRegistry() error {
	l, err := n.ns.listen("tcp", n.RegistryAddr())
	if err != nil {
		return fmt.Errorf("listen for the node's registry: %w", err)
	}
	n.registry = &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go func() { _ = n.registry.Serve(l) }()
	return nil
}

// Push puts a (an image, or an image index and its images) into the node's registry as repository:tag (a
// repository path such as "team/app") and returns the reference pods pull it by, pinned by digest, under host
// (RegistryAddr() or OpenShiftRegistry). From an index the node picks its own platform's image, as it does from a
// multi-arch image of any registry.
func (n *RealNode) Push(ctx context.Context, a image.Artifact, host, repository, tag string) (string, error) {
	ref, err := name.ParseReference(n.RegistryAddr()+"/"+repository+":"+tag, name.Insecure)
	if err != nil {
		return "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = n.Dial // the registry is inside the node's namespace
	if err := remote.Push(ref, a, remote.WithContext(ctx), remote.WithTransport(tr)); err != nil {
		return "", fmt.Errorf("push %s to the node's registry: %w", ref, err)
	}
	d, err := a.Digest()
	if err != nil {
		return "", err
	}
	return host + "/" + repository + "@" + d.String(), nil
}

// Forward accepts connections on l (on the host, typically on loopback) and connects each to addr inside the
// node's namespace: a way in for programs on the host, such as the steps querying a Prometheus that runs in it.
func (n *RealNode) Forward(l net.Listener, addr string) (stop func()) {
	f := forward(l, func(ctx context.Context) (net.Conn, error) { return n.ns.dial(ctx, "tcp", addr) })
	return f.close
}

// Start starts cmd inside the node's network namespace (not its mount namespace), killed when this process
// dies: a program that must reach pods by their addresses, such as a Prometheus scraping them.
func (n *RealNode) Start(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return theSpawner.start(cmd, n.ns.path)
}
