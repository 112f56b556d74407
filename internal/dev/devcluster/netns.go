package devcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// netNS is a network namespace the cluster creates for its real node. It is pinned by a bind mount on a file in
// the cluster's own directory (never under /run/netns), lives until removed, and is removed by that path only.
// Nothing in it has a route out of the machine: it starts with a loopback interface alone.
type netNS struct {
	path string
}

// createNetNS makes a new network namespace pinned at path.
func createNetNS(path string) (*netNS, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create the network namespace file %s: %w", path, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare the network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin the network namespace at %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return &netNS{path: path}, nil
}

// onThread runs f on an OS thread of its own, which is thrown away afterwards: f may change the thread's
// namespaces.
func onThread(f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		done <- f()
	}()
	return <-done
}

// do runs f on a thread inside the namespace. Sockets f creates belong to the namespace for their whole life.
func (n *netNS) do(f func() error) error {
	return onThread(func() error {
		fd, err := unix.Open(n.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the network namespace %s: %w", n.path, err)
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter the network namespace %s: %w", n.path, err)
		}
		return f()
	})
}

// listen opens a listener inside the namespace.
func (n *netNS) listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// dial connects from inside the namespace.
func (n *netNS) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// remove unpins the namespace; the kernel frees it when nothing else holds it.
func (n *netNS) remove() error {
	err := unix.Unmount(n.path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin the network namespace %s: %w", n.path, err)
	}
	if err := os.Remove(n.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
