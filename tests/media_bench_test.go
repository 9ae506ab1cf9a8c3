package tests

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
)

// benchFileSize is the file of the upload and download benchmarks.
const benchFileSize = 8 << 20

// BenchmarkMediaUpload measures POST /upload of distinct 8 MiB files over
// loopback: streaming, hashing, fsync and the row (MB/s).
func BenchmarkMediaUpload(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		alice := s.Register("alice")
		data := randomBytes(b, benchFileSize)
		b.SetBytes(benchFileSize)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			binary.BigEndian.PutUint64(data, uint64(i)) // distinct files: no dedup
			if _, err := alice.UploadMedia(ctx(), mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "video/mp4"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMediaDownload measures the authenticated download of an 8 MiB
// file over loopback (MB/s).
func BenchmarkMediaDownload(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		alice := s.Register("alice")
		uri := upload(b, alice, randomBytes(b, benchFileSize), "video/mp4", "")
		b.SetBytes(benchFileSize)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := http.DefaultClient.Do(mustRequest(b, "GET", s.URL+downloadPath(uri), alice.AccessToken))
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != benchFileSize {
				b.Fatalf("download: %d, %d bytes", resp.StatusCode, n)
			}
		}
	})
}

// BenchmarkMediaThumbnail measures a thumbnail made on request from a
// 1920×1080 JPEG (each request a new crop, 201–700 × 150, so none is
// cached): decoding, scaling, encoding, storing and serving
// (thumbnails/s = 1e9 / ns/op).
func BenchmarkMediaThumbnail(b *testing.B) {
	benchEngines(b, func(b *testing.B, s *Server) {
		alice := s.Register("alice")
		uri := upload(b, alice, encodeImage(b, "jpeg", 1920, 1080), "image/jpeg", "photo.jpg")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			// Crops of ratios no configured size has: made every time.
			path := fmt.Sprintf("/_matrix/client/v1/media/thumbnail/%s/%s?width=%d&height=%d&method=crop",
				uri.Homeserver, uri.FileID, 201+i%500, 150)
			resp, err := http.DefaultClient.Do(mustRequest(b, "GET", s.URL+path, alice.AccessToken))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("thumbnail: %d", resp.StatusCode)
			}
		}
	})
}
