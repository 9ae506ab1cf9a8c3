package tests

import (
	"bytes"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/matrix-gouv/homeserver/config"
)

const mediaCSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
	"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"

// TestMediaServingHeaders: the spec's safe-serving rules. Only the listed
// types are inline; HTML and SVG are attachments; every answer carries the
// sandbox CSP and nosniff; the file name is quoted per RFC 6266.
func TestMediaServingHeaders(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		tests := []struct {
			name, contentType, fileName string
			// override is a file name given in the download path.
			override        string
			wantDisposition string
		}{
			{"html is an attachment", "text/html", `a"b.html`, "", `attachment; filename="a\"b.html"`},
			{"svg is an attachment", "image/svg+xml", "logo.svg", "", `attachment; filename=logo.svg`},
			{"png is inline", "image/png", "photo.png", "", `inline; filename=photo.png`},
			{"text with charset is inline", "text/plain; charset=utf-8", "notes.txt", "", `inline; filename=notes.txt`},
			{"spaces are quoted", "application/pdf", "compte rendu.pdf", "", `attachment; filename="compte rendu.pdf"`},
			{"no name", "application/zip", "", "", `attachment`},
			{"name in the path, utf-8", "application/pdf", "x.pdf", "réunion été.pdf", `attachment; filename*=utf-8''r%C3%A9union%20%C3%A9t%C3%A9.pdf`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				body := []byte("<html><script>alert(1)</script></html>")
				uri := upload(t, alice, body, tt.contentType, tt.fileName)
				path := downloadPath(uri)
				if tt.override != "" {
					path += "/" + url.PathEscape(tt.override)
				}
				r := s.mediaDo("GET", path, alice.AccessToken, nil).expect(t, 200, "")
				if !bytes.Equal(r.Body, body) {
					t.Errorf("body %q", r.Body)
				}
				want := map[string]string{
					"Content-Type":            tt.contentType,
					"Content-Disposition":     tt.wantDisposition,
					"Content-Security-Policy": mediaCSP,
					"X-Content-Type-Options":  "nosniff",
				}
				for k, v := range want {
					if got := r.Header.Get(k); got != v {
						t.Errorf("%s: %q, want %q", k, got, v)
					}
				}
			})
		}
	})
}

// TestMediaRange: Range requests get the right slice (video seeking),
// 416 past the end.
func TestMediaRange(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		data := randomBytes(t, 100_000)
		uri := upload(t, alice, data, "video/mp4", "clip.mp4")
		tests := []struct {
			rangeHdr    string
			wantStatus  int
			from, to    int // the slice expected, to exclusive
			wantContent string
		}{
			{"bytes=0-99", 206, 0, 100, "bytes 0-99/100000"},
			{"bytes=50000-50009", 206, 50000, 50010, "bytes 50000-50009/100000"},
			{"bytes=99990-", 206, 99990, 100000, "bytes 99990-99999/100000"},
			{"bytes=-10", 206, 99990, 100000, "bytes 99990-99999/100000"},
			{"bytes=200000-", 416, 0, 0, "bytes */100000"},
		}
		for _, tt := range tests {
			t.Run(tt.rangeHdr, func(t *testing.T) {
				r := s.mediaDo("GET", downloadPath(uri), alice.AccessToken, nil, "Range", tt.rangeHdr)
				if r.Status != tt.wantStatus {
					t.Fatalf("status %d, want %d", r.Status, tt.wantStatus)
				}
				if got := r.Header.Get("Content-Range"); got != tt.wantContent {
					t.Errorf("Content-Range %q, want %q", got, tt.wantContent)
				}
				if tt.wantStatus == 206 && !bytes.Equal(r.Body, data[tt.from:tt.to]) {
					t.Errorf("got %d bytes, not the slice [%d:%d]", len(r.Body), tt.from, tt.to)
				}
			})
		}
		r := s.mediaDo("GET", downloadPath(uri), alice.AccessToken, nil)
		if r.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("Accept-Ranges %q", r.Header.Get("Accept-Ranges"))
		}
		// The ETag is the content's hash: a client holding it gets 304.
		s.mediaDo("GET", downloadPath(uri), alice.AccessToken, nil, "If-None-Match", r.Header.Get("ETag")).expect(t, 304, "")
	})
}

// TestMediaLegacyFreeze: the unauthenticated legacy endpoints serve only
// media uploaded before media.legacy_freeze (none by default), and
// /versions lists v1.11 so that clients use the authenticated ones.
func TestMediaLegacyFreeze(t *testing.T) {
	t.Parallel()
	legacy := func(s *Server, path string) mediaResp {
		return s.mediaDo("GET", "/_matrix/media/v3/"+path, "", nil)
	}
	t.Run("default", func(t *testing.T) {
		engines(t, func(t *testing.T, s *Server) {
			alice := s.Register("alice")
			png := encodeImage(t, "png", 64, 64)
			uri := upload(t, alice, png, "image/png", "a.png")
			legacy(s, "download/"+uri.Homeserver+"/"+uri.FileID).expect(t, 404, "M_NOT_FOUND")
			legacy(s, "thumbnail/"+uri.Homeserver+"/"+uri.FileID+"?width=32&height=32").expect(t, 404, "M_NOT_FOUND")
			s.mediaDo("GET", downloadPath(uri), alice.AccessToken, nil).expect(t, 200, "")
			r := s.Do("GET", "/_matrix/client/versions", "", nil).Expect(t, 200, "")
			versions, _ := r.Body["versions"].([]any)
			if !slices.Contains(versions, any("v1.11")) {
				t.Errorf("versions %v lack v1.11", versions)
			}
		})
	})
	t.Run("before the freeze", func(t *testing.T) {
		engines(t, func(t *testing.T, s *Server) {
			alice := s.Register("alice")
			png := encodeImage(t, "png", 64, 64)
			uri := upload(t, alice, png, "image/png", "a.png")
			r := legacy(s, "download/"+uri.Homeserver+"/"+uri.FileID).expect(t, 200, "")
			if !bytes.Equal(r.Body, png) || r.Header.Get("Content-Security-Policy") != mediaCSP {
				t.Errorf("legacy download: %d bytes, CSP %q", len(r.Body), r.Header.Get("Content-Security-Policy"))
			}
			legacy(s, "thumbnail/"+uri.Homeserver+"/"+uri.FileID+"?width=32&height=32&method=crop").expect(t, 200, "")
		}, func(c *config.Config) { c.Media.LegacyFreeze = time.Now().Add(time.Hour).UTC().Format(time.RFC3339) })
	})
	t.Run("after the freeze", func(t *testing.T) {
		engines(t, func(t *testing.T, s *Server) {
			alice := s.Register("alice")
			uri := upload(t, alice, []byte("new"), "text/plain", "")
			legacy(s, "download/"+uri.Homeserver+"/"+uri.FileID).expect(t, 404, "M_NOT_FOUND")
		}, func(c *config.Config) { c.Media.LegacyFreeze = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) })
	})
}
