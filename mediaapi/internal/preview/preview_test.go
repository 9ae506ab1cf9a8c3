package preview

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
)

func TestAllowed(t *testing.T) {
	intranet := []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}
	tests := []struct {
		addr string
		want bool
	}{
		{"93.184.216.34", true},
		{"2606:2800:220:1::", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"10.20.3.4", true}, // allowed range
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"fd00::1", false},
		{"fe80::1", false},
		{"::ffff:127.0.0.1", false}, // mapped loopback
		{"224.0.0.1", false},
	}
	for _, tt := range tests {
		if got := Allowed(netip.MustParseAddr(tt.addr), intranet); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestParseOpenGraph(t *testing.T) {
	base, _ := url.Parse("https://example.org/news/article")
	tests := []struct {
		name, page string
		want       OpenGraph
	}{
		{"og tags", `<html><head><meta property="og:title" content="Title"><meta property="og:description" content="Desc">
			<meta property="og:image" content="/img/a.png"><meta property="og:site_name" content="Site"></head><body>x</body></html>`,
			OpenGraph{Title: "Title", Description: "Desc", SiteName: "Site", Image: "https://example.org/img/a.png"}},
		{"fallbacks", `<html><head><title> Page title </title><meta name="description" content="Plain"></head></html>`,
			OpenGraph{Title: "Page title", Description: "Plain"}},
		{"first wins, body ignored", `<head><meta property="og:title" content="One"><meta property="og:title" content="Two"></head>
			<body><meta property="og:description" content="late"></body>`, OpenGraph{Title: "One"}},
		{"javascript image dropped", `<head><meta property="og:image" content="javascript:alert(1)"></head>`, OpenGraph{}},
		{"not html", "\x00\x01binary", OpenGraph{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseOpenGraph([]byte(tt.page), "text/html; charset=utf-8", base); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFetcherRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/page", http.StatusFound)
			return
		}
		fmt.Fprint(w, "<title>hello</title>")
	}))
	defer srv.Close()
	ctx := context.Background()
	if _, err := NewFetcher(nil).Get(ctx, srv.URL+"/page", 1000); !errors.Is(err, ErrBlocked) {
		t.Fatalf("loopback fetch: %v, want ErrBlocked", err)
	}
	allowed := NewFetcher([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	resp, err := allowed.Get(ctx, srv.URL+"/redirect", 1000)
	if err != nil || string(resp.Body) != "<title>hello</title>" || resp.URL.Path != "/page" {
		t.Fatalf("allowed fetch: %+v %v", resp, err)
	}
	resp, err = allowed.Get(ctx, srv.URL+"/page", 5)
	if err != nil || !resp.Truncated || len(resp.Body) != 5 {
		t.Fatalf("truncated fetch: %+v %v", resp, err)
	}
	for _, bad := range []string{"file:///etc/passwd", "ftp://example.org/", "not a url", "http://"} {
		if _, err := allowed.Get(ctx, bad, 10); !errors.Is(err, ErrBadURL) {
			t.Errorf("Get(%q): %v, want ErrBadURL", bad, err)
		}
	}
}
