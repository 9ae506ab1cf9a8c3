package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/gif"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/config"
)

// thumbnailPath returns the authenticated thumbnail path of uri.
func thumbnailPath(uri fmt.Stringer, homeserver, fileID string, w, h int, method string) string {
	return fmt.Sprintf("/_matrix/client/v1/media/thumbnail/%s/%s?width=%d&height=%d&method=%s", homeserver, fileID, w, h, method)
}

// TestMediaThumbnails: for each format, crop gives the requested aspect
// ratio, scale the original's; the result is at least the requested size
// unless the original is smaller, and never upscaled.
func TestMediaThumbnails(t *testing.T) {
	t.Parallel()
	webp, err := os.ReadFile("testdata/gradient-200x100.webp")
	if err != nil {
		t.Fatal(err)
	}
	webpLossless, err := os.ReadFile("testdata/gradient-200x100-lossless.webp")
	if err != nil {
		t.Fatal(err)
	}
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		originals := []struct {
			format, contentType string
			data                []byte
			wantType            string // the thumbnails' type
		}{
			{"png", "image/png", encodeImage(t, "png", 200, 100), "image/png"},
			{"jpeg", "image/jpeg", encodeImage(t, "jpeg", 200, 100), "image/jpeg"},
			{"gif", "image/gif", encodeImage(t, "gif", 200, 100), "image/png"},
			{"webp", "image/webp", webp, "image/png"},
			{"webp lossless", "image/webp", webpLossless, "image/png"},
		}
		// Every original is 200×100 (2:1); the configured sizes are
		// 32×32 and 96×96 crop, 64×48 scale.
		sizes := []struct {
			w, h         int
			method       string
			wantW, wantH int
		}{
			{32, 32, "crop", 32, 32},     // configured size
			{96, 96, "crop", 96, 96},     // configured size
			{50, 40, "crop", 50, 40},     // made on request, requested ratio
			{150, 150, "crop", 100, 100}, // original smaller: the 1:1 middle, not upscaled
			{400, 200, "crop", 200, 100}, // original smaller, same ratio: the original
			{40, 40, "scale", 96, 48},    // the configured 64×48, in the original's ratio
			{100, 30, "scale", 100, 50},  // made on request: at least 100×30
			{320, 240, "scale", 200, 100},
			{1000, 1000, "scale", 200, 100},
		}
		for _, o := range originals {
			uri := upload(t, alice, o.data, o.contentType, "picture")
			for _, sz := range sizes {
				t.Run(fmt.Sprintf("%s %dx%d %s", o.format, sz.w, sz.h, sz.method), func(t *testing.T) {
					r := s.mediaDo("GET", thumbnailPath(uri, uri.Homeserver, uri.FileID, sz.w, sz.h, sz.method), alice.AccessToken, nil).expect(t, 200, "")
					cfg, format, err := image.DecodeConfig(bytes.NewReader(r.Body))
					if err != nil {
						t.Fatalf("thumbnail is not an image: %v", err)
					}
					if cfg.Width != sz.wantW || cfg.Height != sz.wantH {
						t.Errorf("thumbnail %dx%d (%s), want %dx%d", cfg.Width, cfg.Height, format, sz.wantW, sz.wantH)
					}
					wantType := o.wantType
					if cfg.Width == 200 && cfg.Height == 100 {
						wantType = o.contentType // the original itself
					}
					if ct := r.Header.Get("Content-Type"); ct != wantType {
						t.Errorf("Content-Type %q, want %q", ct, wantType)
					}
					if r.Header.Get("Content-Security-Policy") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
						t.Errorf("thumbnail without the safe-serving headers: %v", r.Header)
					}
				})
			}
		}
		// mautrix's own call, animated asked: an animated GIF of the
		// two frames; a still PNG when not asked.
		uri := upload(t, alice, encodeImage(t, "gif", 200, 100), "image/gif", "anim.gif")
		for _, animated := range []bool{true, false} {
			resp, err := alice.DownloadThumbnail(ctx(), uri, 96, 96, mautrix.DownloadThumbnailExtra{Method: "crop", Animated: animated})
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
			if err != nil || cfg.Width != 96 || cfg.Height != 96 {
				t.Fatalf("animated=%v thumbnail: %+v %v", animated, cfg, err)
			}
			if animated {
				g, err := gif.DecodeAll(bytes.NewReader(raw))
				if err != nil || len(g.Image) != 2 || resp.Header.Get("Content-Type") != "image/gif" {
					t.Errorf("animated thumbnail: %s, %v", resp.Header.Get("Content-Type"), err)
				}
			} else if format != "png" {
				t.Errorf("still thumbnail of a GIF is %s", format)
			}
		}
	}, func(c *config.Config) {
		c.Media.ThumbnailSizes = []config.ThumbnailSize{{Width: 32, Height: 32, Method: "crop"}, {Width: 96, Height: 96, Method: "crop"}, {Width: 64, Height: 48, Method: "scale"}}
	})
}

// TestMediaThumbnailErrors: bad parameters, media that is not an image,
// and a decompression bomb (a tiny PNG declaring 50 000 × 50 000 pixels),
// refused from its header without being decoded.
func TestMediaThumbnailErrors(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		img := upload(t, alice, encodeImage(t, "png", 64, 64), "image/png", "a.png")
		text := upload(t, alice, []byte("not an image"), "image/png", "liar.png")
		bomb := upload(t, alice, pngHeader(50000, 50000), "image/png", "bomb.png")
		base := "/_matrix/client/v1/media/thumbnail/" + serverName + "/"
		tests := []struct {
			name, path string
			status     int
			errcode    string
		}{
			{"no width", base + img.FileID + "?height=32", 400, "M_MISSING_PARAM"},
			{"bad height", base + img.FileID + "?width=32&height=abc", 400, "M_INVALID_PARAM"},
			{"negative", base + img.FileID + "?width=-3&height=32", 400, "M_INVALID_PARAM"},
			{"bad method", base + img.FileID + "?width=32&height=32&method=stretch", 400, "M_INVALID_PARAM"},
			{"unknown media", base + "nosuchmedia?width=32&height=32", 404, "M_NOT_FOUND"},
			{"not an image", base + text.FileID + "?width=32&height=32", 400, "M_UNKNOWN"},
			{"decompression bomb", base + bomb.FileID + "?width=32&height=32&method=crop", 413, "M_TOO_LARGE"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				start := time.Now()
				s.mediaDo("GET", tt.path, alice.AccessToken, nil).expect(t, tt.status, tt.errcode)
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("took %s", took)
				}
			})
		}
		s.mediaDo("GET", base+img.FileID+"?width=32&height=32", "", nil).expect(t, 401, "M_MISSING_TOKEN")
	})
}

// pngHeader returns a PNG whose header declares w×h RGBA pixels, followed
// by a few bytes of nothing: decoding it would allocate w×h×4 bytes.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00})
	return b.Bytes()
}

// TestMediaThumbnailsPregenerated: the configured sizes are made on
// upload, without a request (the defaults: two crops; the scales of a
// 200×100 image are the original itself).
func TestMediaThumbnailsPregenerated(t *testing.T) {
	t.Parallel()
	s := StartServer(t, "sqlite:"+t.TempDir()+"/homeserver.db")
	alice := s.Register("alice")
	upload(t, alice, encodeImage(t, "png", 200, 100), "image/png", "a.png")
	deadline := time.Now().Add(10 * time.Second)
	for storedFiles(t, s) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d files stored, want the original and its two crops", storedFiles(t, s))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
