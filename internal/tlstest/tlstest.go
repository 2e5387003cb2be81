// Package tlstest gives the tests that serve TLS (the daemon, tcpadvisor
// fleet, Debian's Prometheus) a certificate of their own and the web
// configuration file that serves it.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SelfSigned returns a certificate for 127.0.0.1, valid for the next hour,
// and its key, in PEM.
func SelfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tcpadvisor test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// Server is a self-signed certificate written to files, with a web
// configuration that serves it.
type Server struct {
	// WebConfig is a --web.config.file, in the format the
	// exporter-toolkit and Prometheus share, that serves TLS with the
	// certificate.
	WebConfig string
	// CertFile holds the certificate in PEM: the CA a client trusts.
	CertFile string
	// CertPEM is the certificate.
	CertPEM []byte
}

// WriteServer writes a self-signed certificate, its key and a web
// configuration that serves TLS with them, followed by the lines of extra
// (such as basic_auth_users), into a directory of the test's.
func WriteServer(t testing.TB, extra string) Server {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := SelfSigned(t)
	s := Server{WebConfig: filepath.Join(dir, "web.yml"), CertFile: filepath.Join(dir, "tls.crt"), CertPEM: certPEM}
	keyFile := filepath.Join(dir, "tls.key")
	for path, content := range map[string][]byte{
		s.CertFile:  certPEM,
		keyFile:     keyPEM,
		s.WebConfig: []byte("tls_server_config:\n  cert_file: " + s.CertFile + "\n  key_file: " + keyFile + "\n" + extra),
	} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Client returns an HTTP client that trusts the server's certificate.
func (s Server) Client(timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CertPEM)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
