package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// writeCA writes the certificate of srv (httptest's own CA-less
// certificate, valid for example.com and 127.0.0.1) as a PEM bundle.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	der := srv.Certificate().Raw
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTripper(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host+" "+r.URL.Path)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	resolved := 0
	tr, err := New(Options{
		AllowPrivate:  true, // httptest listens on loopback
		Allowed:       func(s string) bool { return s == "example.com" || s == "other.example" },
		Addresses:     map[string]string{"example.com": addr},
		TrustedCAFile: writeCA(t, srv),
		Resolve: func(ctx context.Context, s spec.ServerName) ([]fclient.ResolutionResult, error) {
			resolved++
			return []fclient.ResolutionResult{{Destination: addr, Host: s, TLSServerName: "other.example"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}

	// The configured address, TLS checked against the trusted CA for the
	// server name.
	resp, err := client.Get("matrix://example.com/_matrix/key/v2/server")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "example.com /_matrix/key/v2/server" {
		t.Errorf("body = %q", body)
	}
	if resolved != 0 {
		t.Errorf("discovery ran for a server with a configured address")
	}

	// Discovery's answer, whose certificate does not match: refused.
	if _, err := client.Get("matrix://other.example/x"); err == nil {
		t.Error("a certificate for another name was accepted")
	} else {
		var cerr *tls.CertificateVerificationError
		if !errors.As(err, &cerr) {
			t.Logf("error: %v", err)
		}
	}
	if resolved != 1 {
		t.Errorf("resolved %d times", resolved)
	}

	// A server off the list is never contacted.
	if _, err := client.Get("matrix://evil.example/x"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("request to a server off the list: %v", err)
	}
	if resolved != 1 {
		t.Errorf("discovery ran for a server off the list")
	}
}

func TestTripperWithoutTrustedCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	tr, err := New(Options{
		Allowed:   func(string) bool { return true },
		Addresses: map[string]string{"example.com": strings.TrimPrefix(srv.URL, "https://")},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&http.Client{Transport: tr}).Get("matrix://example.com/x")
	var uerr x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uerr) && !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate: %v", err)
	}
}

func TestNewRejectsBadCAFile(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(t.TempDir(), "absent.pem")} {
		if _, err := New(Options{Allowed: func(string) bool { return true }, TrustedCAFile: path}); err == nil {
			t.Errorf("New accepted CA file %s", path)
		}
	}
}

func TestTripperRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	tr, err := New(Options{
		Allowed:       func(string) bool { return true },
		Addresses:     map[string]string{"example.com": addr},
		TrustedCAFile: writeCA(t, srv),
		Resolve: func(ctx context.Context, s spec.ServerName) ([]fclient.ResolutionResult, error) {
			return []fclient.ResolutionResult{{Destination: addr, Host: s, TLSServerName: "example.com"}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	// Discovered: loopback is refused before any byte is sent.
	if _, err := client.Get("matrix://discovered.example/x"); !errors.Is(err, ErrPrivateAddress) {
		t.Errorf("discovery to loopback: %v", err)
	}
	// Configured: the operator chose it.
	if resp, err := client.Get("matrix://example.com/x"); err != nil {
		t.Errorf("configured loopback address: %v", err)
	} else {
		resp.Body.Close()
	}
}

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2001:4860:4860::8888": true,
		"127.0.0.1": false, "10.1.2.3": false, "192.168.0.1": false, "172.16.0.1": false, "169.254.1.1": false,
		"100.64.0.1": false, "::1": false, "fd00::1": false, "fe80::1": false, "0.0.0.0": false, "::ffff:127.0.0.1": false,
	} {
		if got := isPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestTripperHTTPSURLs(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "media") }))
	defer srv.Close()
	for _, tc := range []struct {
		name         string
		allowed      bool
		allowPrivate bool
		want         error // nil: answered
	}{
		{"allowed host", true, true, nil},
		{"host off the list", false, true, ErrNotAllowed},
		{"loopback without AllowPrivate", true, false, ErrPrivateAddress},
	} {
		tr, err := New(Options{
			Allowed:       func(s string) bool { return tc.allowed && s == "127.0.0.1" },
			TrustedCAFile: writeCA(t, srv),
			AllowPrivate:  tc.allowPrivate,
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/x")
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "media" {
				t.Errorf("%s: body %q", tc.name, body)
			}
		} else if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Only matrix:// and https:// are federation's.
	tr, _ := New(Options{Allowed: func(string) bool { return true }})
	if _, err := (&http.Client{Transport: tr}).Get("http://127.0.0.1/x"); err == nil {
		t.Error("a plain http URL was sent")
	}
}
