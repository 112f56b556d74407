package devcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the files kube-apiserver and the shim need: a CA, one serving certificate for 127.0.0.1, the
// ServiceAccount signing key pair and a static token file.
type pki struct {
	CACert, CAKey         string
	ServingCert, ServeKey string
	SAKey, SAPub          string
	Tokens                string
	CAData                []byte
	AdminToken            string
	// Tokens of the components, each its own user in system:masters, so the audit log tells them apart.
	ComponentTokens map[string]string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	dir   string
}

// signClient makes a client certificate signed by the cluster CA for user cn in groups orgs, as dir/name.crt and
// dir/name.key (X.509 authentication: kubelets, and kube-apiserver to kubelets).
func (p *pki) signClient(name, cn string, orgs ...string) (cert, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", err
	}
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: now, NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		return "", "", fmt.Errorf("sign the client certificate of %s: %w", cn, err)
	}
	cert, key = filepath.Join(p.dir, name+".crt"), filepath.Join(p.dir, name+".key")
	if err := writePEM(cert, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return cert, key, writeKey(key, k)
}

// components that get a token of their own; the audit policy leaves them out.
var components = []string{"kube-controller-manager", "kube-scheduler", "kwok", "devcluster-shim"}

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		ServingCert: filepath.Join(dir, "serving.crt"), ServeKey: filepath.Join(dir, "serving.key"),
		SAKey: filepath.Join(dir, "sa.key"), SAPub: filepath.Join(dir, "sa.pub"),
		Tokens: filepath.Join(dir, "tokens.csv"),
	}
	now := time.Now().Add(-time.Hour)
	for _, step := range []func() error{
		func() error { return p.makeCA(dir, now) },
		func() error { return p.makeServing(now) },
		p.makeServiceAccountKeys,
		p.makeTokens,
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// makeCA creates the cluster CA, valid from now for ten years.
func (p *pki) makeCA(dir string, now time.Time) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "canaryline-devcluster-ca"},
		NotBefore: now, NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.ca, p.caKey, p.dir = caCert, caKey, dir
	p.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := writePEM(p.CACert, "CERTIFICATE", caDER); err != nil {
		return err
	}
	return writeKey(p.CAKey, caKey)
}

// makeServing creates the serving certificate of kube-apiserver (and the shim) for 127.0.0.1, the kubernetes
// Service's address and names.
func (p *pki) makeServing(now time.Time) error {
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now, NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, p.ca, &srvKey.PublicKey, p.caKey)
	if err != nil {
		return fmt.Errorf("create serving certificate: %w", err)
	}
	if err := writePEM(p.ServingCert, "CERTIFICATE", srvDER); err != nil {
		return err
	}
	return writeKey(p.ServeKey, srvKey)
}

// makeServiceAccountKeys creates the key pair ServiceAccount tokens are signed with: RSA (RS256 is what every
// verifier accepts).
func (p *pki) makeServiceAccountKeys() error {
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writePEM(p.SAKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	return writePEM(p.SAPub, "PUBLIC KEY", pub)
}

// makeTokens writes the static token file: the admin's token and one per component.
func (p *pki) makeTokens() error {
	p.AdminToken = randomToken()
	tokens := fmt.Sprintf("%s,admin,uid-admin,\"system:masters\"\n", p.AdminToken)
	p.ComponentTokens = map[string]string{}
	for _, c := range components {
		t := randomToken()
		p.ComponentTokens[c] = t
		tokens += fmt.Sprintf("%s,system:devcluster:%s,uid-%s,\"system:masters\"\n", t, c, c)
	}
	return os.WriteFile(p.Tokens, []byte(tokens), 0o600)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}
