package mediaapi_test

import (
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

func TestFederationDownload(t *testing.T) {
	c := newComponent(t, nil)
	client, fed := chi.NewRouter(), chi.NewRouter()
	c.Mount(client)
	c.MountFederation(fed)

	req := httptest.NewRequest("POST", "/_matrix/media/v3/upload?filename=notes.txt", strings.NewReader("federated bytes"))
	req.Header.Set("Authorization", "Bearer mat_alice")
	req.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	client.ServeHTTP(rec, req)
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &up); err != nil || rec.Code != 200 {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	id := up.ContentURI[strings.LastIndex(up.ContentURI, "/")+1:]

	rec = httptest.NewRecorder()
	fed.ServeHTTP(rec, httptest.NewRequest("GET", "/_matrix/federation/v1/media/download/"+id, nil))
	mt, params, err := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	if rec.Code != 200 || err != nil || mt != "multipart/mixed" {
		t.Fatalf("federation download: %d %q %v", rec.Code, rec.Header().Get("Content-Type"), err)
	}
	mr := multipart.NewReader(rec.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil || meta.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("metadata part: %v %v", meta, err)
	}
	if b, _ := io.ReadAll(meta); string(b) != "{}" {
		t.Errorf("metadata %q", b)
	}
	file, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(file)
	if string(body) != "federated bytes" || file.Header.Get("Content-Type") != "text/plain" ||
		file.Header.Get("Content-Disposition") != "inline; filename=notes.txt" {
		t.Errorf("file part %v %q", file.Header, body)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("more parts: %v", err)
	}

	rec = httptest.NewRecorder()
	fed.ServeHTTP(rec, httptest.NewRequest("GET", "/_matrix/federation/v1/media/download/unknown", nil))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "M_NOT_FOUND") {
		t.Errorf("unknown media: %d %s", rec.Code, rec.Body)
	}
}
