package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/matrix-gouv/homeserver/config"
	"github.com/matrix-gouv/homeserver/homeserver/api"
	"github.com/matrix-gouv/homeserver/homeserver/internal/auth"
	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// recorder is a Notifier that remembers whom it woke.
type recorder struct {
	mu       sync.Mutex
	toDevice []string
	lists    []string
	counts   []string
}

func (r *recorder) NotifyToDevice(u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.toDevice = append(r.toDevice, u)
}

func (r *recorder) NotifyDeviceListChange(u string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lists = append(r.lists, u)
}

func (r *recorder) NotifyKeyCounts(u, d string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = append(r.counts, u+" "+d)
}

// call runs handler h as dev with body and chi path parameters.
func call(t *testing.T, h func(*http.Request) (any, error), dev api.Device, body any, params map[string]string) error {
	t.Helper()
	raw, _ := json.Marshal(body)
	r := httptest.NewRequest("POST", "/", bytes.NewReader(raw))
	rc := chi.NewRouteContext()
	for k, v := range params {
		rc.URLParams.Add(k, v)
	}
	ctx := context.WithValue(auth.WithDevice(r.Context(), dev), chi.RouteCtxKey, rc)
	_, err := h(r.WithContext(ctx))
	return err
}

// TestNotifications: the handlers wake /sync for exactly the users a
// change concerns, after it is stored, and not for a retried request.
func TestNotifications(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		st := storage.New(db)
		for _, d := range []api.Device{{UserID: "@a:x", DeviceID: "A"}, {UserID: "@b:x", DeviceID: "B"}} {
			if err := st.OpenSession(ctx, storage.NewSession{UserID: d.UserID, DeviceID: d.DeviceID, AccessHash: "h" + d.DeviceID}); err != nil {
				t.Fatal(err)
			}
		}
		rec := &recorder{}
		h := New(Deps{Global: &config.Global{ServerName: "x"}, Config: &config.Client{MaxRequestBytes: 1 << 20}, Store: st, Notifier: rec})
		alice := api.Device{UserID: "@a:x", DeviceID: "A"}

		pub, priv := newKey(t)
		dk := signed(t, map[string]any{"user_id": "@a:x", "device_id": "A", "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
			"keys": map[string]any{"ed25519:A": pub, "curve25519:A": "c"}}, priv, "@a:x", "ed25519:A")
		for range 2 {
			if err := call(t, h.Upload, alice, map[string]any{"device_keys": dk}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(rec.lists, []string{"@a:x"}) {
			t.Errorf("device-list wake-ups after two identical uploads: %v", rec.lists)
		}

		msgs := map[string]any{"messages": map[string]any{"@b:x": map[string]any{"*": map[string]any{}}, "@c:x": map[string]any{"*": map[string]any{}}}}
		params := map[string]string{"eventType": "m.test", "txnID": "t1"}
		for range 2 {
			if err := call(t, h.SendToDevice, alice, msgs, params); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(rec.toDevice, []string{"@b:x"}) {
			t.Errorf("to-device wake-ups: %v (want bob once: carol has no device, the retry sends nothing)", rec.toDevice)
		}

		master, mpriv := newKey(t)
		body := map[string]any{"master_key": map[string]any{"user_id": "@a:x", "usage": []string{"master"}, "keys": map[string]any{"ed25519:" + master: master}}}
		ssk, _ := newKey(t)
		body["self_signing_key"] = signed(t, map[string]any{"user_id": "@a:x", "usage": []string{"self_signing"}, "keys": map[string]any{"ed25519:" + ssk: ssk}},
			mpriv, "@a:x", "ed25519:"+master)
		if err := call(t, h.UploadSigningKeys, alice, body, nil); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rec.lists, []string{"@a:x", "@a:x"}) {
			t.Errorf("device-list wake-ups after cross-signing: %v", rec.lists)
		}
	})
}
