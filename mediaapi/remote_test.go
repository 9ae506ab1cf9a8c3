package mediaapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/mediaapi"
	mediaapiapi "github.com/matrix-gouv/homeserver/mediaapi/api"
)

// fakeRemote serves remote.org's media "doc" and counts fetches;
// "broken.org" is unreachable.
type fakeRemote struct {
	mu      sync.Mutex
	fetches int
}

func (f *fakeRemote) FetchMedia(ctx context.Context, origin, mediaID string) (mediaapiapi.RemoteFile, error) {
	f.mu.Lock()
	f.fetches++
	f.mu.Unlock()
	switch {
	case origin == "broken.org":
		return mediaapiapi.RemoteFile{}, errors.New("connection refused")
	case origin == "remote.org" && mediaID == "doc":
		return mediaapiapi.RemoteFile{ContentType: "text/html", FileName: "page.html", Body: io.NopCloser(strings.NewReader("<h1>remote</h1>"))}, nil
	}
	return mediaapiapi.RemoteFile{}, mediaapiapi.ErrNotFound
}

func (f *fakeRemote) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

// newComponent starts a component of example.org with remote as its
// RemoteFetcher.
func newComponent(t *testing.T, remote mediaapiapi.RemoteFetcher) *mediaapi.Component {
	t.Helper()
	c, err := mediaapi.New(mediaapi.Deps{
		Global: &config.Global{ServerName: "example.org"},
		Config: &config.Media{MaxUploadBytes: maxUpload, StoreDir: t.TempDir(), UserQuotaBytes: -1, MaxImagePixels: 1e6},
		DB:     storagetest.Open(t, storagetest.SQLiteURL(t)),
		Tokens: fakeTokens{},
		Remote: remote,
		Log:    testLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}

func newRemoteRouter(t *testing.T, remote mediaapiapi.RemoteFetcher) http.Handler {
	t.Helper()
	r := chi.NewRouter()
	newComponent(t, remote).Mount(r)
	return r
}

func get(h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRemoteMedia(t *testing.T) {
	remote := &fakeRemote{}
	h := newRemoteRouter(t, remote)
	const doc = "/_matrix/client/v1/media/download/remote.org/doc"
	for i := 0; i < 2; i++ {
		rec := get(h, "GET", doc, "mat_alice")
		if rec.Code != 200 || rec.Body.String() != "<h1>remote</h1>" {
			t.Fatalf("download %d: %d %s", i, rec.Code, rec.Body)
		}
		if d := rec.Header().Get("Content-Disposition"); d != "attachment; filename=page.html" {
			t.Errorf("remote HTML disposition %q", d)
		}
	}
	if n := remote.count(); n != 1 {
		t.Errorf("%d fetches for two downloads, want 1 (cached)", n)
	}
	tests := []struct {
		path   string
		status int
		code   string
	}{
		{"/_matrix/client/v1/media/download/remote.org/missing", 404, "M_NOT_FOUND"},
		{"/_matrix/client/v1/media/download/broken.org/x", 502, "M_UNKNOWN"},
		// The legacy endpoint with allow_remote=false keeps to the cache.
		{"/_matrix/media/v3/download/remote.org/other?allow_remote=false", 404, "M_NOT_FOUND"},
	}
	for _, tt := range tests {
		rec := get(h, "GET", tt.path, "mat_alice")
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.code) {
			t.Errorf("%s: %d %s, want %d %s", tt.path, rec.Code, rec.Body, tt.status, tt.code)
		}
	}

	// The purge drops remote media last served before the given time.
	purge := "/_synapse/admin/v1/purge_media_cache?before_ts=" + strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10)
	if rec := get(h, "POST", purge, "mat_alice"); rec.Code != 403 {
		t.Fatalf("purge by a non-admin: %d", rec.Code)
	}
	before := remote.count()
	rec := get(h, "POST", purge, "mat_admin")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"deleted":1`) {
		t.Fatalf("purge: %d %s", rec.Code, rec.Body)
	}
	if rec := get(h, "GET", doc, "mat_alice"); rec.Code != 200 || remote.count() != before+1 {
		t.Fatalf("after the purge: %d, %d fetches, want a new fetch", rec.Code, remote.count())
	}
}

func TestNoRemote(t *testing.T) {
	h := newRemoteRouter(t, nil)
	rec := get(h, "GET", "/_matrix/client/v1/media/download/remote.org/doc", "mat_alice")
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "M_NOT_FOUND") {
		t.Fatalf("remote media without federation: %d %s", rec.Code, rec.Body)
	}
}
