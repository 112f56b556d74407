package devcluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The real node's addresses. They exist only inside the node's network namespace, which has no route out of the
// machine; two clusters on one machine each have their own namespace, so they use the same ones.
var (
	nodeIP       = net.ParseIP("10.250.0.2")
	nodeNet      = mustCIDR("10.250.0.0/24")
	podNet       = mustCIDR("10.88.0.0/16")
	podSubnet    = "10.88.0.0/24" // what the bridge's host-local IPAM hands out
	podGateway   = "10.88.0.1"
	serviceNet   = mustCIDR("10.96.0.0/16")
	kubernetesIP = net.ParseIP("10.96.0.1")
)

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// inNode says whether ip is an address of the node's network namespace: the node, a pod, a Service.
func inNode(ip net.IP) bool {
	return nodeNet.Contains(ip) || podNet.Contains(ip) || serviceNet.Contains(ip)
}

// splice copies both ways until either side closes, then closes both.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if c, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = c.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

// forwarder accepts on a listener and connects each connection with dial.
type forwarder struct {
	l    net.Listener
	dial func(ctx context.Context) (net.Conn, error)
	wg   sync.WaitGroup
}

func forward(l net.Listener, dial func(ctx context.Context) (net.Conn, error)) *forwarder {
	f := &forwarder{l: l, dial: dial}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				up, err := f.dial(ctx)
				if err != nil {
					c.Close()
					return
				}
				splice(c, up)
			}()
		}
	}()
	return f
}

func (f *forwarder) close() {
	f.l.Close()
	f.wg.Wait()
}

// egressProxy is kube-apiserver's way into the node's network namespace (its "cluster" egress selection): an HTTP
// CONNECT proxy on a unix socket. It connects to addresses of the node's namespace from inside it, to loopback from
// the host (webhooks that run on the host), and to nothing else: nothing leaves the machine through it.
type egressProxy struct {
	l  net.Listener
	ns *netNS
}

func startEgressProxy(socket string, ns *netNS) (*egressProxy, error) {
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	p := &egressProxy{l: l, ns: ns}
	go p.serve()
	return p, nil
}

func (p *egressProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *egressProxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		c.Close()
		return
	}
	up, err := p.dial(req.Host)
	if err != nil {
		fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v", err)
		c.Close()
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		up.Close()
		return
	}
	if n := br.Buffered(); n > 0 { // bytes the client sent right after the request
		data, _ := br.Peek(n)
		if _, err := up.Write(data); err != nil {
			c.Close()
			up.Close()
			return
		}
	}
	splice(c, up)
}

func (p *egressProxy) dial(hostport string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case ip == nil:
		return nil, fmt.Errorf("%s: only addresses, no names", hostport)
	case ip.IsLoopback():
		return (&net.Dialer{}).DialContext(ctx, "tcp", hostport)
	case inNode(ip):
		return p.ns.dial(ctx, "tcp", hostport)
	}
	return nil, fmt.Errorf("%s is outside the cluster's own addresses: refused", hostport)
}

func (p *egressProxy) close() { p.l.Close() }

const egressConfig = `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`
