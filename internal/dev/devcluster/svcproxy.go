package devcluster

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// serviceProxy answers every Service ClusterIP inside the real node's network namespace, as kube-proxy would: each
// ClusterIP is an address of the namespace's loopback interface, each port a listener there, and each connection goes
// to a ready endpoint on the real node (a pod address), round robin. The `kubernetes` Service goes to the API the
// steps use, the OpenShift shim on the host's loopback. Endpoints of KWOK's pods have no process behind them: a
// Service with none other refuses the connection.
type serviceProxy struct {
	ns   *netNS
	shim string
	nl   *netlink.Handle
	link netlink.Link

	factory informers.SharedInformerFactory
	svcs    cache.Store
	slices  cache.Store
	stop    chan struct{}

	mu        sync.Mutex
	listeners map[string]net.Listener // "ip:port" -> listener
	owner     map[string]string       // "ip:port" -> "ns/name/port"
	addrs     map[string]bool         // ClusterIPs on lo
	next      map[string]int
	wg        sync.WaitGroup
}

func startServiceProxy(ctx context.Context, kube kubernetes.Interface, ns *netNS, shim string) (*serviceProxy, error) {
	h, err := netns.GetFromPath(ns.path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, err
	}
	link, err := nl.LinkByName("lo")
	if err != nil {
		nl.Close()
		return nil, err
	}
	p := &serviceProxy{ns: ns, shim: shim, nl: nl, link: link, stop: make(chan struct{}),
		listeners: map[string]net.Listener{}, owner: map[string]string{}, addrs: map[string]bool{}, next: map[string]int{}}
	p.factory = informers.NewSharedInformerFactory(kube, 0)
	svcInf := p.factory.Core().V1().Services().Informer()
	sliceInf := p.factory.Discovery().V1().EndpointSlices().Informer()
	p.svcs, p.slices = svcInf.GetStore(), sliceInf.GetStore()
	sync := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { p.sync() }, UpdateFunc: func(any, any) { p.sync() },
		DeleteFunc: func(any) { p.sync() }}
	if _, err := svcInf.AddEventHandler(sync); err != nil {
		return nil, err
	}
	p.factory.Start(p.stop)
	for typ, ok := range p.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			p.close()
			return nil, fmt.Errorf("the Service proxy could not list %v", typ)
		}
	}
	p.sync()
	return p, nil
}

// sync makes the listeners and addresses what the Services ask for.
func (p *serviceProxy) sync() {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]string{}
	for _, o := range p.svcs.List() {
		svc := o.(*corev1.Service)
		ip := net.ParseIP(svc.Spec.ClusterIP)
		if ip == nil || !serviceNet.Contains(ip) {
			continue
		}
		for _, port := range svc.Spec.Ports {
			if port.Protocol == corev1.ProtocolTCP || port.Protocol == "" {
				want[net.JoinHostPort(ip.String(), strconv.Itoa(int(port.Port)))] = svc.Namespace + "/" + svc.Name + "/" + port.Name
			}
		}
	}
	for addr, l := range p.listeners {
		if _, ok := want[addr]; !ok {
			l.Close()
			delete(p.listeners, addr)
			delete(p.owner, addr)
		}
	}
	used := map[string]bool{}
	for addr, key := range want {
		host, _, _ := net.SplitHostPort(addr)
		used[host] = true
		p.owner[addr] = key
		if _, ok := p.listeners[addr]; ok {
			continue
		}
		if !p.addrs[host] {
			if err := p.nl.AddrAdd(p.link, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(host), Mask: net.CIDRMask(32, 32)}}); err != nil {
				continue
			}
			p.addrs[host] = true
		}
		l, err := p.ns.listen("tcp", addr)
		if err != nil {
			continue
		}
		p.listeners[addr] = l
		p.wg.Add(1)
		go p.serve(l, addr)
	}
	for host := range p.addrs {
		if !used[host] {
			_ = p.nl.AddrDel(p.link, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(host), Mask: net.CIDRMask(32, 32)}})
			delete(p.addrs, host)
		}
	}
}

func (p *serviceProxy) serve(l net.Listener, addr string) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			up, err := p.dial(addr)
			if err != nil {
				c.Close()
				return
			}
			splice(c, up)
		}()
	}
}

// dial connects to an endpoint of the Service behind addr.
func (p *serviceProxy) dial(addr string) (net.Conn, error) {
	p.mu.Lock()
	key := p.owner[addr]
	p.mu.Unlock()
	if key == "default/kubernetes/https" {
		return net.Dial("tcp", p.shim)
	}
	eps := p.endpoints(key)
	if len(eps) == 0 {
		return nil, fmt.Errorf("Service %s has no ready endpoint on the real node", key)
	}
	p.mu.Lock()
	i := p.next[key] % len(eps)
	p.next[key]++
	p.mu.Unlock()
	return p.ns.dial(context.Background(), "tcp", eps[i])
}

// endpoints are the ready endpoints of Service port key ("ns/name/port") on the real node (its pods, and programs
// listening at the node's address), as ip:port.
func (p *serviceProxy) endpoints(key string) []string {
	var out []string
	for _, o := range p.slices.List() {
		s := o.(*discoveryv1.EndpointSlice)
		if s.Namespace+"/"+s.Labels[discoveryv1.LabelServiceName] != key[:len(key)-len(portName(key))-1] {
			continue
		}
		for _, port := range s.Ports {
			if port.Port == nil || (port.Name != nil && *port.Name != portName(key)) || (port.Name == nil && portName(key) != "") {
				continue
			}
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, a := range ep.Addresses {
					if ip := net.ParseIP(a); ip != nil && (podNet.Contains(ip) || nodeNet.Contains(ip)) {
						out = append(out, net.JoinHostPort(a, strconv.Itoa(int(*port.Port))))
					}
				}
			}
		}
	}
	return out
}

func portName(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[i+1:]
		}
	}
	return ""
}

func (p *serviceProxy) close() {
	close(p.stop)
	p.factory.Shutdown()
	p.mu.Lock()
	for _, l := range p.listeners {
		l.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.nl.Close()
}

// service is the Service ns/name as last seen.
func (p *serviceProxy) service(ns, name string) (*corev1.Service, bool) {
	o, ok, err := p.svcs.GetByKey(ns + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	return o.(*corev1.Service), true
}
