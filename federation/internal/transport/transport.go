// Package transport is the HTTP round tripper of every outbound
// federation request: it refuses servers the policy does not allow,
// finds a server's address (a configured override, else the spec's
// discovery: .well-known, SRV, port 8448, IP literals, through
// gomatrixserverlib's fclient.ResolveServer), and speaks TLS checking the
// certificate against the system's roots plus an optional trusted CA
// bundle, never skipping verification.
//
// Requests come from gomatrixserverlib's fclient with URLs of the form
// matrix://<server name>/path; this tripper rewrites them to https. A
// plain https:// URL (where another server's media answer redirects) is
// sent as it is, under the same policy: its host must be allowed as a
// server name would be, and reach a public address unless AllowPrivate.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// ErrNotAllowed: the destination is not a server this server federates
// with; nothing was sent.
var ErrNotAllowed = errors.New("federation with this server is not allowed")

// Options configure a Tripper.
type Options struct {
	// Allowed reports whether a server may be contacted. Required.
	Allowed func(serverName string) bool
	// Addresses are fixed "host:port" addresses of server names,
	// bypassing discovery.
	Addresses map[string]string
	// TrustedCAFile is a PEM bundle trusted besides the system's roots;
	// empty for none.
	TrustedCAFile string
	// AllowPrivate lets discovery lead to non-public addresses
	// (loopback, private, link-local...). Addresses are always allowed.
	AllowPrivate bool
	// Resolve finds a server's addresses; nil means
	// fclient.ResolveServer. Tests set it.
	Resolve func(ctx context.Context, serverName spec.ServerName) ([]fclient.ResolutionResult, error)
}

// Tripper is an http.RoundTripper for matrix:// URLs.
type Tripper struct {
	opts  Options
	roots *x509.CertPool

	mu sync.Mutex // guards transports
	// transports holds one transport per TLS server name (SNI differs
	// per destination; a transport has one TLS configuration) and per
	// address policy (public addresses only, or any).
	transports map[transportKey]*http.Transport
}

// New returns a tripper; it fails when the CA file cannot be read or
// holds no certificate.
func New(opts Options) (*Tripper, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if opts.TrustedCAFile != "" {
		pem, err := os.ReadFile(opts.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("read federation trusted CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("federation trusted CA file %s holds no PEM certificate", opts.TrustedCAFile)
		}
	}
	if opts.Resolve == nil {
		opts.Resolve = fclient.ResolveServer
	}
	return &Tripper{opts: opts, roots: roots, transports: map[transportKey]*http.Transport{}}, nil
}

// RoundTrip sends r to the server its URL names, trying each address
// discovery gives in turn.
func (t *Tripper) RoundTrip(r *http.Request) (*http.Response, error) {
	serverName := r.URL.Host
	if r.URL.Scheme == "https" {
		serverName = r.URL.Hostname()
	}
	if !t.opts.Allowed(serverName) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%s: %w", serverName, ErrNotAllowed)
	}
	switch r.URL.Scheme {
	case "https":
		return t.transport(transportKey{serverName, !t.opts.AllowPrivate}).RoundTrip(r)
	case "matrix":
	default:
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("%s: scheme %q is not federation's", serverName, r.URL.Scheme)
	}
	results, err := t.resolve(r.Context(), serverName)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", serverName, err)
	}
	_, configured := t.opts.Addresses[serverName]
	publicOnly := !configured && !t.opts.AllowPrivate
	var lastErr error
	for i, res := range results {
		req := r.Clone(r.Context())
		if i > 0 && r.GetBody != nil {
			if req.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		} else if i > 0 && r.Body != nil {
			break // the body is spent and cannot be read again
		}
		req.URL.Scheme, req.URL.Host, req.Host = "https", res.Destination, string(res.Host)
		resp, err := t.transport(transportKey{res.TLSServerName, publicOnly}).RoundTrip(req)
		if err == nil {
			return resp, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no address found for %s", serverName)
	}
	return nil, lastErr
}

// resolve returns where to reach serverName: its configured address, or
// the results of discovery.
func (t *Tripper) resolve(ctx context.Context, serverName string) ([]fclient.ResolutionResult, error) {
	if addr, ok := t.opts.Addresses[serverName]; ok {
		host := serverName
		if h, _, err := net.SplitHostPort(serverName); err == nil {
			host = h
		}
		return []fclient.ResolutionResult{{Destination: addr, Host: spec.ServerName(serverName), TLSServerName: host}}, nil
	}
	return t.opts.Resolve(ctx, spec.ServerName(serverName))
}

// Transport timeouts; the request's own timeout is the client's.
const (
	dialTimeout     = 10 * time.Second
	idleConnTimeout = 90 * time.Second
)

// transportKey names a transport: the TLS server name, and whether it
// may reach only public addresses.
type transportKey struct {
	tlsServerName string
	publicOnly    bool
}

// ErrPrivateAddress: discovery led to an address that is not public.
var ErrPrivateAddress = errors.New("federation to a non-public address is not allowed")

// transport returns the transport for one key.
func (t *Tripper) transport(key transportKey) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.transports[key]
	if !ok {
		dialer := &net.Dialer{Timeout: dialTimeout}
		if key.publicOnly {
			// Checked on the address actually dialled, after DNS: a name
			// that resolves to a private address is caught too.
			dialer.Control = func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil || !isPublic(ap.Addr()) {
					return fmt.Errorf("%s: %w", address, ErrPrivateAddress)
				}
				return nil
			}
		}
		tr = &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     &tls.Config{ServerName: key.tlsServerName, RootCAs: t.roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     idleConnTimeout,
		}
		t.transports[key] = tr
	}
	return tr
}

// sharedAddressSpace is 100.64.0.0/10 (carrier-grade NAT), not public.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// isPublic reports whether a is a public unicast address.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsValid() && a.IsGlobalUnicast() && !a.IsPrivate() && !sharedAddressSpace.Contains(a)
}

// CloseIdleConnections closes the idle connections of every transport.
func (t *Tripper) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.transports {
		tr.CloseIdleConnections()
	}
}
