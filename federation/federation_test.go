package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"github.com/sirupsen/logrus"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/internal/version"
)

const testServerName = "gouv.example"

// newTestComponent builds the component with a fresh key and a fixed clock.
func newTestComponent(t *testing.T, now time.Time) (*Component, config.SigningKey) {
	t.Helper()
	key, err := config.NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Deps{
		Global: &config.Global{ServerName: testServerName, SigningKey: key.String()},
		Config: &config.Federation{KeyValidity: config.Duration(24 * time.Hour)},
		Log:    logrus.NewEntry(logrus.New()),
		Now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// get serves one GET through the component's routes.
func get(t *testing.T, c *Component, path string) (int, []byte) {
	t.Helper()
	r := chi.NewRouter()
	c.Mount(r)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, body
}

func TestServerKeysVerify(t *testing.T) {
	now := time.Now()
	c, key := newTestComponent(t, now)
	status, body := get(t, c, "/_matrix/key/v2/server")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	pub := key.Private.Public().(ed25519.PublicKey)
	if err := gomatrixserverlib.VerifyJSON(testServerName, gomatrixserverlib.KeyID(key.ID), pub, body); err != nil {
		t.Fatalf("signature does not verify: %v\n%s", err, body)
	}

	// What a remote server does with the response: parse and check it.
	var keys gomatrixserverlib.ServerKeys
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	checks, verified := gomatrixserverlib.CheckKeys(testServerName, now, keys)
	if !checks.AllChecksOK {
		t.Fatalf("CheckKeys failed: %+v\n%s", checks, body)
	}
	if got := verified[gomatrixserverlib.KeyID(key.ID)]; !pub.Equal(ed25519.PublicKey(got)) {
		t.Errorf("verified key = %x, want %x", got, pub)
	}
	if want := spec.AsTimestamp(now.Add(24 * time.Hour)); keys.ValidUntilTS != want {
		t.Errorf("valid_until_ts = %d, want %d", keys.ValidUntilTS, want)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["old_verify_keys"]) != "{}" {
		t.Errorf("old_verify_keys = %s, want {}", raw["old_verify_keys"])
	}

	// A tampered response must not verify.
	var tampered map[string]any
	if err := json.Unmarshal(body, &tampered); err != nil {
		t.Fatal(err)
	}
	tampered["valid_until_ts"] = now.Add(365 * 24 * time.Hour).UnixMilli()
	forged, _ := json.Marshal(tampered)
	if err := gomatrixserverlib.VerifyJSON(testServerName, gomatrixserverlib.KeyID(key.ID), pub, forged); err == nil {
		t.Error("a tampered key response verifies")
	}
}

func TestVersion(t *testing.T) {
	c, _ := newTestComponent(t, time.Now())
	status, body := get(t, c, "/_matrix/federation/v1/version")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var v versionResponse
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if v.Server.Name != ServerSoftware || v.Server.Version != version.String() {
		t.Errorf("version = %+v", v)
	}
}

func TestNewRejectsBadKey(t *testing.T) {
	_, err := New(Deps{
		Global: &config.Global{ServerName: testServerName, SigningKey: "nope"},
		Config: &config.Federation{},
		Log:    logrus.NewEntry(logrus.New()),
	})
	if err == nil {
		t.Fatal("New accepted a bad signing key")
	}
}

func TestServerKeysOldKeys(t *testing.T) {
	now := time.Now()
	current, _ := config.NewSigningKey()
	old, _ := config.NewSigningKey()
	expired := now.Add(-48 * time.Hour).UTC().Truncate(time.Second)
	c, err := New(Deps{
		Global: &config.Global{ServerName: testServerName, SigningKey: current.String()},
		Config: &config.Federation{KeyValidity: config.Duration(time.Hour),
			OldSigningKeys: []config.OldSigningKey{{Key: old.String(), Expired: expired.Format(time.RFC3339)}}},
		Log: logrus.NewEntry(logrus.New()),
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, c, "/_matrix/key/v2/server")
	var keys gomatrixserverlib.ServerKeys
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	if checks, _ := gomatrixserverlib.CheckKeys(testServerName, now, keys); !checks.AllChecksOK {
		t.Fatalf("CheckKeys failed: %+v", checks)
	}
	o, ok := keys.OldVerifyKeys[gomatrixserverlib.KeyID(old.ID)]
	if !ok || !ed25519.PublicKey(o.Key).Equal(old.Private.Public()) || o.ExpiredTS != spec.AsTimestamp(expired) {
		t.Fatalf("old_verify_keys = %+v", keys.OldVerifyKeys)
	}
	if _, ok := keys.VerifyKeys[gomatrixserverlib.KeyID(old.ID)]; ok {
		t.Error("the old key is published as current")
	}
	// The key ring finds both of our keys without asking anyone.
	res, err := keyDatabase{c}.FetchKeys(context.Background(), map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp{
		{ServerName: testServerName, KeyID: gomatrixserverlib.KeyID(current.ID)}: 0,
		{ServerName: testServerName, KeyID: gomatrixserverlib.KeyID(old.ID)}:     0,
	})
	if err != nil || len(res) != 2 {
		t.Fatalf("own keys = %v, %v", res, err)
	}
	for req, r := range res {
		if req.KeyID == gomatrixserverlib.KeyID(old.ID) && r.WasValidAt(spec.AsTimestamp(now), gomatrixserverlib.StrictValiditySignatureCheck) {
			t.Error("the old key is valid now")
		}
		if req.KeyID == gomatrixserverlib.KeyID(old.ID) && !r.WasValidAt(spec.AsTimestamp(expired.Add(-time.Hour)), gomatrixserverlib.StrictValiditySignatureCheck) {
			t.Error("the old key was not valid before it expired")
		}
	}

	// The old key's id may not be the current key's.
	if _, err := New(Deps{
		Global: &config.Global{ServerName: testServerName, SigningKey: current.String()},
		Config: &config.Federation{OldSigningKeys: []config.OldSigningKey{{Key: current.String(), Expired: expired.Format(time.RFC3339)}}},
		Log:    logrus.NewEntry(logrus.New()),
	}); err == nil {
		t.Error("New accepted an old key with the current key's id")
	}
}

func TestNotaryOwnKeys(t *testing.T) {
	now := time.Now()
	c, key := newTestComponent(t, now)
	// Our own keys, countersigned (by the same key): a notary query
	// about this server needs no database.
	status, body := get(t, c, "/_matrix/key/v2/query/"+testServerName)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp struct {
		ServerKeys []json.RawMessage `json:"server_keys"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.ServerKeys) != 1 {
		t.Fatalf("notary answer %s: %v", body, err)
	}
	if err := gomatrixserverlib.VerifyJSON(testServerName, gomatrixserverlib.KeyID(key.ID), key.Private.Public().(ed25519.PublicKey), resp.ServerKeys[0]); err != nil {
		t.Errorf("notary answer does not verify: %v", err)
	}
}

func TestRequireSignature(t *testing.T) {
	c, _ := newTestComponent(t, time.Now())
	c.cfg.AllowedServers = []string{"friend.example"}
	called := false
	h := c.RequireSignature(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	tests := []struct {
		name, auth string
		status     int
		errcode    string
	}{
		{"no header", "", 401, "M_UNAUTHORIZED"},
		{"bearer", "Bearer abc", 401, "M_UNAUTHORIZED"},
		{"not allowed", `X-Matrix origin="stranger.example",key="ed25519:1",sig="abc"`, 403, "M_FORBIDDEN"},
		{"other destination", `X-Matrix origin="friend.example",destination="other.example",key="ed25519:1",sig="abc"`, 401, "M_UNAUTHORIZED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/_matrix/federation/v1/event/$x", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var body map[string]any
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.status || body["errcode"] != tt.errcode {
				t.Errorf("%d %v, want %d %s", rec.Code, body, tt.status, tt.errcode)
			}
		})
	}
	if called {
		t.Error("the handler ran for a refused request")
	}
}

// TestAskable: a request about a room goes to each allowed server once,
// in the order given, never to this server.
func TestAskable(t *testing.T) {
	c := &Component{serverName: "here", cfg: &config.Federation{AllowedServers: []string{"a", "b", "c"}, DeniedServers: []string{"c"}}}
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{}},
		{[]string{"b", "a", "b"}, []string{"b", "a"}},
		{[]string{"here", "a", "off-list", "c", "a"}, []string{"a"}},
	} {
		if got := c.askable(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("askable(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
