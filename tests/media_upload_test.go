package tests

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/matrix-gouv/homeserver/config"
)

// storedFiles counts the files in s's media store.
func storedFiles(t *testing.T, s *Server) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.Cfg.Global.Path(s.Cfg.Media.StoreDir), "sha256"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMediaUploadDownload: a round trip gives the same bytes and their
// SHA-256 (to the client in Repr-Digest, to admins in the media info);
// two uploads of a file are stored once; media survive a restart; the
// authenticated endpoint needs a token.
func TestMediaUploadDownload(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		data := randomBytes(t, 300_000)
		sum := sha256.Sum256(data)
		uri := upload(t, alice, data, "application/pdf", "rapport.pdf")
		if uri.Homeserver != serverName || uri.FileID == "" {
			t.Fatalf("content uri %s", uri)
		}
		check := func(t *testing.T) {
			t.Helper()
			resp, err := alice.Download(ctx(), uri)
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes, not the %d uploaded", len(got), len(data))
			}
			if want := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"; resp.Header.Get("Repr-Digest") != want {
				t.Errorf("Repr-Digest %q, want %q", resp.Header.Get("Repr-Digest"), want)
			}
			if resp.Header.Get("Content-Type") != "application/pdf" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		}
		check(t)

		admin := s.RegisterAdmin("admin")
		info := s.mediaDo("GET", "/_synapse/admin/v1/media/"+uri.Homeserver+"/"+uri.FileID, admin.AccessToken, nil).expect(t, 200, "")
		mi, _ := info.JSON["media_info"].(map[string]any)
		if mi["sha256"] != hex.EncodeToString(sum[:]) || mi["media_length"] != float64(len(data)) || mi["user_id"] != alice.UserID.String() {
			t.Errorf("admin media info %v", mi)
		}
		s.mediaDo("GET", "/_synapse/admin/v1/media/"+uri.Homeserver+"/"+uri.FileID, alice.AccessToken, nil).expect(t, 403, "M_FORBIDDEN")
		s.mediaDo("GET", "/_synapse/admin/v1/media_by_sha256/nothex", admin.AccessToken, nil).expect(t, 400, "M_INVALID_PARAM")

		// The same bytes again, by another user: another media id, one file.
		bob := s.Register("bob")
		uri2 := upload(t, bob, data, "application/pdf", "copie.pdf")
		if uri2 == uri {
			t.Fatal("two uploads share a media id")
		}
		if n := storedFiles(t, s); n != 1 {
			t.Errorf("%d files stored for two uploads of one file, want 1", n)
		}
		// Admins find every copy by its checksum.
		byHash := s.mediaDo("GET", "/_synapse/admin/v1/media_by_sha256/"+hex.EncodeToString(sum[:]), admin.AccessToken, nil).expect(t, 200, "")
		if byHash.JSON["total"] != float64(2) {
			t.Errorf("media by hash: %s", byHash.Body)
		}
		upload(t, bob, []byte("something else"), "text/plain", "")
		if n := storedFiles(t, s); n != 2 {
			t.Errorf("%d files stored after a different upload, want 2", n)
		}

		// Deleting one of the two keeps the file for the other.
		s.mediaDo("DELETE", "/_synapse/admin/v1/media/"+uri2.Homeserver+"/"+uri2.FileID, admin.AccessToken, nil).expect(t, 200, "")
		s.mediaDo("GET", downloadPath(uri2), bob.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
		check(t)

		s.mediaDo("GET", downloadPath(uri), "", nil).expect(t, 401, "M_MISSING_TOKEN")
		s.mediaDo("GET", downloadPath(uri), "mat_nonsense", nil).expect(t, 401, "M_UNKNOWN_TOKEN")
		s.mediaDo("GET", "/_matrix/client/v1/media/download/"+serverName+"/nosuchmedia", alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")
		// Remote media: no federation fetcher, so not available.
		s.mediaDo("GET", "/_matrix/client/v1/media/download/other.example/abc", alice.AccessToken, nil).expect(t, 404, "M_NOT_FOUND")

		s.Restart()
		check(t)
	})
}

// TestMediaTooLarge: an upload over media.max_upload_bytes is refused with
// 413 M_TOO_LARGE, whether it declares its length or streams it.
func TestMediaTooLarge(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		s.mediaDo("POST", "/_matrix/media/v3/upload", alice.AccessToken, randomBytes(t, 1000), "Content-Type", "text/plain").expect(t, 200, "")
		s.mediaDo("POST", "/_matrix/media/v3/upload", alice.AccessToken, randomBytes(t, 1001), "Content-Type", "text/plain").expect(t, 413, "M_TOO_LARGE")
		// Chunked: no Content-Length, refused once past the limit.
		req, _ := http.NewRequest("POST", s.URL+"/_matrix/media/v3/upload", io.MultiReader(bytes.NewReader(randomBytes(t, 5000))))
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked upload over the limit: %d", resp.StatusCode)
		}
		if n := storedFiles(t, s); n != 1 {
			t.Errorf("%d files stored, want only the accepted one", n)
		}
		cfg, err := alice.GetMediaConfig(ctx())
		if err != nil || cfg.UploadSize != 1000 {
			t.Errorf("media config %+v %v", cfg, err)
		}
	}, func(c *config.Config) { c.Media.MaxUploadBytes = 1000 })
}

// TestMediaQuota: a user's uploads stop at media.user_quota_bytes; other
// users are not affected.
func TestMediaQuota(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		up := func(c *mautrix.Client, n int) mediaResp {
			return s.mediaDo("POST", "/_matrix/media/v3/upload", c.AccessToken, randomBytes(t, n), "Content-Type", "application/octet-stream")
		}
		up(alice, 2000).expect(t, 200, "")
		up(alice, 1500).expect(t, 400, "M_RESOURCE_LIMIT_EXCEEDED")
		up(alice, 1000).expect(t, 200, "")
		up(alice, 1).expect(t, 400, "M_RESOURCE_LIMIT_EXCEEDED")
		up(bob, 2000).expect(t, 200, "")
	}, func(c *config.Config) { c.Media.MaxUploadBytes, c.Media.UserQuotaBytes = 2000, 3000 })
}

// TestMediaAsyncUpload: create then PUT; the content arrives once, from
// its creator; a download waits for it or answers 504.
func TestMediaAsyncUpload(t *testing.T) {
	t.Parallel()
	engines(t, func(t *testing.T, s *Server) {
		alice, bob := s.Register("alice"), s.Register("bob")
		created, err := alice.CreateMXC(ctx())
		if err != nil {
			t.Fatal(err)
		}
		if created.UnusedExpiresAt.Before(time.Now().Add(23*time.Hour)) || created.ContentURI.FileID == "" {
			t.Fatalf("create: %+v", created)
		}
		uri := created.ContentURI
		putPath := "/_matrix/media/v3/upload/" + uri.Homeserver + "/" + uri.FileID
		s.mediaDo("GET", downloadPath(uri)+"?timeout_ms=100", alice.AccessToken, nil).expect(t, 504, "M_NOT_YET_UPLOADED")
		s.mediaDo("PUT", putPath, bob.AccessToken, []byte("bob's"), "Content-Type", "text/plain").expect(t, 403, "M_FORBIDDEN")

		// A download started before the upload gets the content.
		data := randomBytes(t, 50_000)
		got := make(chan mediaResp, 1)
		go func() {
			resp, err := http.DefaultClient.Do(mustRequest(t, "GET", s.URL+downloadPath(uri)+"?timeout_ms=10000", alice.AccessToken))
			if err != nil {
				got <- mediaResp{}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			got <- mediaResp{Status: resp.StatusCode, Body: b}
		}()
		time.Sleep(300 * time.Millisecond)
		if _, err := alice.UploadMedia(ctx(), mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "image/png", MXC: uri}); err != nil {
			t.Fatalf("async upload: %v", err)
		}
		if r := <-got; r.Status != 200 || !bytes.Equal(r.Body, data) {
			t.Fatalf("waiting download: %d, %d bytes", r.Status, len(r.Body))
		}
		s.mediaDo("PUT", putPath, alice.AccessToken, []byte("again"), "Content-Type", "text/plain").expect(t, 409, "M_CANNOT_OVERWRITE_MEDIA")
		s.mediaDo("PUT", "/_matrix/media/v3/upload/"+serverName+"/unknownid", alice.AccessToken, []byte("x")).expect(t, 404, "M_NOT_FOUND")

		// At most max_pending_uploads (5) waiting at once.
		for i := 0; i < 5; i++ {
			s.mediaDo("POST", "/_matrix/media/v1/create", bob.AccessToken, nil).expect(t, 200, "")
		}
		s.mediaDo("POST", "/_matrix/media/v1/create", bob.AccessToken, nil).expect(t, 429, "M_LIMIT_EXCEEDED")
	})
}

func mustRequest(t testing.TB, method, url, token string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Error(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// TestMediaLargeUpload: 50 MB from loopback in under 2 s, streamed: the
// server's memory does not grow by 20 MB.
func TestMediaLargeUpload(t *testing.T) {
	t.Parallel()
	storagetestSQLiteOnly(t, func(t *testing.T, s *Server) {
		alice := s.Register("alice")
		const size = 50 << 20
		h := sha256.New()
		body := io.TeeReader(io.LimitReader(newFastRand(), size), h)
		peak := watchHeap(t)
		start := time.Now()
		resp, err := alice.UploadMedia(ctx(), mautrix.ReqUploadMedia{Content: body, ContentLength: size, ContentType: "video/mp4"})
		took := time.Since(start)
		grown := peak()
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		t.Logf("50 MB upload: %s (%.0f MB/s), heap growth %.1f MB", took, float64(size)/(1<<20)/took.Seconds(), float64(grown)/(1<<20))
		if took > 2*time.Second && !raceEnabled {
			t.Errorf("50 MB upload took %s, want under 2 s", took)
		}
		if grown > 20<<20 {
			t.Errorf("heap grew by %d bytes during the upload, want under 20 MB", grown)
		}
		dl, err := alice.Download(ctx(), resp.ContentURI)
		if err != nil {
			t.Fatal(err)
		}
		h2 := sha256.New()
		n, _ := io.Copy(h2, dl.Body)
		dl.Body.Close()
		if n != size || !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
			t.Fatalf("downloaded %d bytes with another hash", n)
		}
	})
}

// storagetestSQLiteOnly runs fn on one server: timing tests need not run
// on both engines (the bytes never touch the database).
func storagetestSQLiteOnly(t *testing.T, fn func(t *testing.T, s *Server)) {
	fn(t, StartServer(t, "sqlite:"+filepath.Join(t.TempDir(), "homeserver.db")))
}

// fastRand is a cheap deterministic byte stream (xorshift), so that the
// client side of the big upload costs little.
type fastRand struct{ x uint64 }

func newFastRand() *fastRand { return &fastRand{x: 0x9E3779B97F4A7C15} }

func (r *fastRand) Read(p []byte) (int, error) {
	for i := range p {
		r.x ^= r.x << 13
		r.x ^= r.x >> 7
		r.x ^= r.x << 17
		p[i] = byte(r.x)
	}
	return len(p), nil
}

// watchHeap samples the heap in use until the returned function is
// called, which returns the largest growth seen over the start.
func watchHeap(t *testing.T) func() uint64 {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak {
				peak = ms.HeapInuse - base
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak
	}
}
