package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/matrix-gouv/homeserver/config"
)

// TestMediaPreviewURL: off by default; when on, a page's OpenGraph summary
// with its image kept as media; non-public addresses refused unless
// allowed.
func TestMediaPreviewURL(t *testing.T) {
	t.Parallel()
	img := encodeImage(t, "png", 120, 60)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/article":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<html><head><title>ignored</title><meta property="og:title" content="Réforme des services">
				<meta property="og:description" content="Ce qui change."><meta property="og:image" content="/cover.png"></head><body></body></html>`)
		case "/cover.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(img)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(site.Close)
	preview := func(s *Server, token, target string) mediaResp {
		return s.mediaDo("GET", "/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(target), token, nil)
	}

	t.Run("off by default", func(t *testing.T) {
		s := StartServer(t, "sqlite:"+t.TempDir()+"/homeserver.db")
		preview(s, s.Register("alice").AccessToken, site.URL+"/article").expect(t, 404, "M_UNRECOGNIZED")
	})
	t.Run("loopback refused", func(t *testing.T) {
		s := StartServer(t, "sqlite:"+t.TempDir()+"/homeserver.db", func(c *config.Config) { c.Media.URLPreviews = true })
		preview(s, s.Register("alice").AccessToken, site.URL+"/article").expect(t, 403, "M_FORBIDDEN")
	})
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		r := preview(s, alice.AccessToken, site.URL+"/article").expect(t, 200, "")
		if r.JSON["og:title"] != "Réforme des services" || r.JSON["og:description"] != "Ce qui change." ||
			r.JSON["og:image:width"] != float64(120) || r.JSON["og:image:type"] != "image/png" {
			t.Fatalf("preview %s", r.Body)
		}
		mxc, _ := r.JSON["og:image"].(string)
		if !strings.HasPrefix(mxc, "mxc://"+serverName+"/") {
			t.Fatalf("og:image %q", mxc)
		}
		got := s.mediaDo("GET", "/_matrix/client/v1/media/download/"+strings.TrimPrefix(mxc, "mxc://"), alice.AccessToken, nil).expect(t, 200, "")
		if !bytes.Equal(got.Body, img) {
			t.Error("preview image differs from the page's")
		}
		preview(s, alice.AccessToken, "").expect(t, 400, "M_MISSING_PARAM")
		preview(s, alice.AccessToken, "file:///etc/passwd").expect(t, 400, "M_INVALID_PARAM")
		preview(s, alice.AccessToken, site.URL+"/missing").expect(t, 502, "M_UNKNOWN")
		s.mediaDo("GET", "/_matrix/client/v1/media/preview_url?url=x", "", nil).expect(t, 401, "M_MISSING_TOKEN")
	}, func(c *config.Config) {
		c.Media.URLPreviews = true
		c.Media.URLPreviewAllowedIPs = []string{"127.0.0.1/32"}
	})
}
