package mediaapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/remote"
	"github.com/matrix-gouv/homeserver/internal/bus/bustest"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/mediaapi"
)

const maxUpload = 1234567

// fakeTokens knows one valid and one expired token; anything else is
// unknown, and "mat_broken" fails as an unreachable database would.
type fakeTokens struct{}

func (fakeTokens) QueryAccessToken(ctx context.Context, token string) (api.Device, error) {
	switch token {
	case "mat_alice":
		return api.Device{UserID: "@alice:example.org", DeviceID: "ALICEPHONE"}, nil
	case "mat_admin":
		return api.Device{UserID: "@admin:example.org", DeviceID: "ADMINPC", IsAdmin: true}, nil
	case "mat_expired":
		return api.Device{}, api.ErrSoftLogout
	case "mat_broken":
		return api.Device{}, errors.New("database unreachable")
	}
	return api.Device{}, api.ErrUnknownToken
}

func testLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// newRouter mounts a media component that resolves tokens with tokens.
func newRouter(t *testing.T, tokens api.TokenQuerier) http.Handler {
	t.Helper()
	c, err := mediaapi.New(mediaapi.Deps{
		Global: &config.Global{ServerName: "example.org"},
		Config: &config.Media{MaxUploadBytes: maxUpload, StoreDir: t.TempDir()},
		DB:     storagetest.Open(t, storagetest.SQLiteURL(t)),
		Tokens: tokens,
		Log:    testLog(),
	})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	r := chi.NewRouter()
	c.Mount(r)
	return r
}

func TestConfig(t *testing.T) {
	b := bustest.Embedded(t)
	stop, err := remote.ServeTokens(b, fakeTokens{})
	if err != nil {
		t.Fatalf("serve tokens: %v", err)
	}
	t.Cleanup(stop)
	transports := []struct {
		name   string
		tokens api.TokenQuerier
	}{
		{"direct", fakeTokens{}},
		{"bus", remote.NewTokenClient(b)},
	}

	tests := []struct {
		name       string
		query      string // URL query
		authz      []string
		wantStatus int
		wantCode   string // errcode; empty for 200
		wantSoft   any    // soft_logout in the body; nil: absent
	}{
		{name: "bearer", authz: []string{"Bearer mat_alice"}, wantStatus: 200},
		{name: "bearer any case", authz: []string{"bearer mat_alice"}, wantStatus: 200},
		{name: "query parameter", query: "?access_token=mat_alice", wantStatus: 200},
		{name: "unknown", authz: []string{"Bearer mat_nobody"}, wantStatus: 401, wantCode: "M_UNKNOWN_TOKEN", wantSoft: false},
		{name: "unknown in query", query: "?access_token=mat_nobody", wantStatus: 401, wantCode: "M_UNKNOWN_TOKEN", wantSoft: false},
		{name: "expired", authz: []string{"Bearer mat_expired"}, wantStatus: 401, wantCode: "M_UNKNOWN_TOKEN", wantSoft: true},
		{name: "missing", wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "empty parameter", query: "?access_token=", wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "empty bearer", authz: []string{"Bearer "}, wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "other scheme", authz: []string{"Basic YWxpY2U6cGFzcw=="}, wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "header and parameter", query: "?access_token=mat_alice", authz: []string{"Bearer mat_alice"}, wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "two headers", authz: []string{"Bearer mat_alice", "Bearer mat_alice"}, wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "two parameters", query: "?access_token=mat_alice&access_token=mat_alice", wantStatus: 401, wantCode: "M_MISSING_TOKEN"},
		{name: "token store fails", authz: []string{"Bearer mat_broken"}, wantStatus: 500, wantCode: "M_UNKNOWN"},
	}
	paths := []string{"/_matrix/client/v1/media/config", "/_matrix/media/v3/config"}

	for _, tr := range transports {
		router := newRouter(t, tr.tokens)
		for _, path := range paths {
			for _, tt := range tests {
				t.Run(tr.name+path+"/"+tt.name, func(t *testing.T) {
					req := httptest.NewRequest(http.MethodGet, path+tt.query, nil)
					for _, a := range tt.authz {
						req.Header.Add("Authorization", a)
					}
					rec := httptest.NewRecorder()
					router.ServeHTTP(rec, req)
					var body map[string]any
					if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
						t.Fatalf("body %q is not JSON: %v", rec.Body, err)
					}
					if rec.Code != tt.wantStatus {
						t.Fatalf("status %d (%v), want %d", rec.Code, body, tt.wantStatus)
					}
					if tt.wantCode == "" {
						if size, _ := body["m.upload.size"].(float64); size != maxUpload || len(body) != 1 {
							t.Fatalf("body %v, want m.upload.size %d", body, maxUpload)
						}
						return
					}
					if body["errcode"] != tt.wantCode {
						t.Fatalf("errcode %v, want %s (body %v)", body["errcode"], tt.wantCode, body)
					}
					if soft, ok := body["soft_logout"]; soft != tt.wantSoft || (tt.wantSoft == nil && ok) {
						t.Fatalf("soft_logout %v, want %v", soft, tt.wantSoft)
					}
				})
			}
		}
	}
}

func TestNewNeedsDeps(t *testing.T) {
	full := mediaapi.Deps{Global: &config.Global{}, Config: &config.Media{}, DB: storagetest.Open(t, storagetest.SQLiteURL(t)), Tokens: fakeTokens{}, Log: testLog()}
	tests := []struct {
		name   string
		change func(d *mediaapi.Deps)
	}{
		{"no global", func(d *mediaapi.Deps) { d.Global = nil }},
		{"no config", func(d *mediaapi.Deps) { d.Config = nil }},
		{"no database", func(d *mediaapi.Deps) { d.DB = nil }},
		{"no tokens", func(d *mediaapi.Deps) { d.Tokens = nil }},
		{"no log", func(d *mediaapi.Deps) { d.Log = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := full
			tt.change(&d)
			if _, err := mediaapi.New(d); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
	if _, err := mediaapi.New(full); err != nil {
		t.Fatalf("New with every dep: %v", err)
	}
}
