package federation

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
