package devcluster

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
)

// clusterDomain is the cluster's DNS domain, as kubelet's clusterDomain says.
const clusterDomain = "cluster.local."

// nodeDNS is the cluster's DNS inside the real node's network namespace, at the node's address (kubelet's
// clusterDNS): it answers <service>.<namespace>.svc.cluster.local with the Service's ClusterIP, as CoreDNS does in a
// cluster, and every other name with NXDOMAIN at once. It forwards nothing: no query leaves the machine.
type nodeDNS struct {
	udp     net.PacketConn
	tcp     net.Listener
	service func(ns, name string) (*corev1.Service, bool)
	wg      sync.WaitGroup
}

func startNodeDNS(ns *netNS, service func(ns, name string) (*corev1.Service, bool)) (*nodeDNS, error) {
	d := &nodeDNS{service: service}
	addr := net.JoinHostPort(nodeIP.String(), "53")
	if err := ns.do(func() error {
		var err error
		if d.udp, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		d.tcp, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		if d.udp != nil {
			d.udp.Close()
		}
		return nil, err
	}
	d.wg.Add(2)
	go d.serveUDP()
	go d.serveTCP()
	return d, nil
}

func (d *nodeDNS) serveUDP() {
	defer d.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := d.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			_, _ = d.udp.WriteTo(out, from)
		}
	}
}

func (d *nodeDNS) serveTCP() {
	defer d.wg.Done()
	for {
		c, err := d.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			for {
				var size [2]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					return
				}
				msg := make([]byte, binary.BigEndian.Uint16(size[:]))
				if _, err := io.ReadFull(c, msg); err != nil {
					return
				}
				out := d.answer(msg)
				if out == nil {
					return
				}
				binary.BigEndian.PutUint16(size[:], uint16(len(out)))
				if _, err := c.Write(append(size[:], out...)); err != nil {
					return
				}
			}
		}()
	}
}

// answer builds the reply to one query (nil for what is not a query).
func (d *nodeDNS) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeNameError}
	ip, found := d.lookup(q.Name.String())
	if found {
		rh.RCode = dnsmessage.RCodeSuccess
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	if found && q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET {
		var a dnsmessage.AResource
		copy(a.A[:], ip.To4())
		_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, a)
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// lookup finds a Service's ClusterIP by its name, <service>.<namespace>.svc.cluster.local.
func (d *nodeDNS) lookup(name string) (net.IP, bool) {
	name = strings.ToLower(name)
	rest, ok := strings.CutSuffix(name, ".svc."+clusterDomain)
	if !ok {
		return nil, false
	}
	svc, ns, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(ns, ".") {
		return nil, false
	}
	s, ok := d.service(ns, svc)
	if !ok {
		return nil, false
	}
	ip := net.ParseIP(s.Spec.ClusterIP)
	if ip == nil || ip.To4() == nil {
		return nil, false
	}
	return ip, true
}

func (d *nodeDNS) close() {
	d.udp.Close()
	d.tcp.Close()
	d.wg.Wait()
}
