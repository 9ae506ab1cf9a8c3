// Package preview fetches web pages that users name in messages and reads
// their OpenGraph summary, for GET /_matrix/client/v1/media/preview_url.
// The server then reaches out to addresses chosen by users, so every
// connection is checked after DNS resolution: loopback, private,
// link-local and other non-public addresses are refused (unless an
// operator allows a range), which also defeats DNS rebinding and
// redirects to internal hosts.
package preview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors of Fetch.
var (
	// ErrBlocked: the address is not public and not allowed.
	ErrBlocked = errors.New("address not allowed for previews")
	// ErrBadURL: not an http or https URL.
	ErrBadURL = errors.New("not an http(s) URL")
)

// Limits of one fetch.
const (
	fetchTimeout = 10 * time.Second
	maxRedirects = 5
	userAgent    = "matrix-gouv-homeserver (URL preview)"
)

// extraBlocked are non-public ranges that netip's predicates do not cover.
var extraBlocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Fetcher fetches pages for previews. Build it with NewFetcher.
type Fetcher struct {
	client *http.Client
}

// NewFetcher returns a fetcher that refuses non-public addresses except
// those in allowed.
func NewFetcher(allowed []netip.Prefix) *Fetcher {
	dialer := &net.Dialer{
		Timeout: fetchTimeout,
		// Control runs once the name is resolved, for each address
		// tried: the check covers what is really connected to.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrBlocked, address)
			}
			if !Allowed(ap.Addr(), allowed) {
				return fmt.Errorf("%w: %s", ErrBlocked, ap.Addr())
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil, // never through a proxy that would reach inside
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   fetchTimeout,
		ResponseHeaderTimeout: fetchTimeout,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Fetcher{client: &http.Client{
		Transport: tr,
		Timeout:   2 * fetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return ErrBadURL
			}
			return nil
		},
	}}
}

// Allowed reports whether a preview may connect to addr: a public
// address, or one in allowed.
func Allowed(addr netip.Addr, allowed []netip.Prefix) bool {
	addr = addr.Unmap()
	for _, p := range allowed {
		if p.Contains(addr) {
			return true
		}
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() {
		return false
	}
	for _, p := range extraBlocked {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// Response is a fetched resource: its final URL (after redirects), type
// and at most the requested number of bytes.
type Response struct {
	URL         *url.URL
	ContentType string
	Body        []byte
	// Truncated is set when the resource was longer than asked.
	Truncated bool
}

// Get fetches rawURL, reading at most limit bytes of the body.
func (f *Fetcher) Get(ctx context.Context, rawURL string, limit int64) (Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Response{}, ErrBadURL
	}
	ctx, cancel := context.WithTimeout(ctx, 2*fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Response{}, ErrBadURL
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/html, image/*;q=0.9, */*;q=0.1")
	resp, err := f.client.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("fetch %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Response{}, fmt.Errorf("fetch %s: status %d", u.Host, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Response{}, fmt.Errorf("read %s: %w", u.Host, err)
	}
	out := Response{URL: resp.Request.URL, ContentType: resp.Header.Get("Content-Type"), Body: body}
	if int64(len(body)) > limit {
		out.Body, out.Truncated = body[:limit], true
	}
	return out, nil
}

// IsHTML reports whether a content type is an HTML page's.
func IsHTML(contentType string) bool {
	t := strings.ToLower(strings.TrimSpace(strings.Split(contentType, ";")[0]))
	return t == "text/html" || t == "application/xhtml+xml"
}
