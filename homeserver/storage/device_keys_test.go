package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

// openDevice creates a device (with a session) for the key tests.
func openDevice(t *testing.T, s *storage.Store, user, device string) {
	t.Helper()
	if err := s.OpenSession(context.Background(), *session(user, device, "hash-"+user+device)); err != nil {
		t.Fatal(err)
	}
}

func otks(n int) []storage.OneTimeKey {
	out := make([]storage.OneTimeKey, n)
	for i := range out {
		out[i] = storage.OneTimeKey{Algorithm: "signed_curve25519", KeyID: fmt.Sprintf("K%03d", i), JSON: fmt.Sprintf(`{"key":"k%d"}`, i)}
	}
	return out
}

func TestUploadKeys(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		openDevice(t, s, "@a:x", "D")
		pos0, _ := s.DeviceListPos(ctx)

		changed, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", DeviceKeys: `{"k":1}`, OneTimeKeys: otks(3),
			FallbackKeys: []storage.OneTimeKey{{Algorithm: "signed_curve25519", KeyID: "F1", JSON: `{"key":"f1"}`}}})
		if err != nil || !changed {
			t.Fatalf("first upload: changed %v, %v", changed, err)
		}
		// The same device keys again are no change; a device-list row
		// appears only for the first.
		if changed, err = s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", DeviceKeys: `{"k":1}`}); err != nil || changed {
			t.Fatalf("repeat: changed %v, %v", changed, err)
		}
		pos1, _ := s.DeviceListPos(ctx)
		if users, _ := s.ChangedUsers(ctx, pos0, pos1); !slices.Equal(users, []string{"@a:x"}) || pos1 != pos0+1 {
			t.Fatalf("device-list changes: %v (%d -> %d)", users, pos0, pos1)
		}
		counts, err := s.OneTimeKeyCounts(ctx, "@a:x", "D")
		if err != nil || counts["signed_curve25519"] != 3 {
			t.Fatalf("counts %v %v", counts, err)
		}
		// A key id reused with other content is refused and the whole
		// upload changes nothing.
		bad := append(otks(5)[3:], storage.OneTimeKey{Algorithm: "signed_curve25519", KeyID: "K000", JSON: `{"key":"other"}`})
		if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", OneTimeKeys: bad}); !errors.Is(err, storage.ErrKeyConflict) {
			t.Fatalf("conflict: %v", err)
		}
		if counts, _ := s.OneTimeKeyCounts(ctx, "@a:x", "D"); counts["signed_curve25519"] != 3 {
			t.Fatalf("a refused upload stored keys: %v", counts)
		}
		// The same key again is harmless.
		if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", OneTimeKeys: otks(1)}); err != nil {
			t.Fatal(err)
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, "@a:x", "D"); !slices.Equal(types, []string{"signed_curve25519"}) {
			t.Fatalf("unused fallback types %v", types)
		}
		keys, err := s.DeviceKeysOf(ctx, "@a:x", nil)
		if err != nil || len(keys) != 1 || keys[0].KeyJSON != `{"k":1}` {
			t.Fatalf("device keys %+v %v", keys, err)
		}
	})
}

func TestClaimKey(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		openDevice(t, s, "@a:x", "D")
		if _, err := s.ClaimKey(ctx, "@a:x", "D", "signed_curve25519"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("claim with no keys: %v", err)
		}
		fb := storage.OneTimeKey{Algorithm: "signed_curve25519", KeyID: "F1", JSON: `{"key":"f1"}`}
		if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", OneTimeKeys: otks(2), FallbackKeys: []storage.OneTimeKey{fb}}); err != nil {
			t.Fatal(err)
		}
		for _, want := range []storage.ClaimedKey{
			{KeyID: "signed_curve25519:K000", JSON: `{"key":"k0"}`},
			{KeyID: "signed_curve25519:K001", JSON: `{"key":"k1"}`},
			{KeyID: "signed_curve25519:F1", JSON: `{"key":"f1"}`, Fallback: true},
			// The fallback key stays and is handed out again.
			{KeyID: "signed_curve25519:F1", JSON: `{"key":"f1"}`, Fallback: true},
		} {
			got, err := s.ClaimKey(ctx, "@a:x", "D", "signed_curve25519")
			if err != nil || got != want {
				t.Fatalf("claim: got %+v %v, want %+v", got, err, want)
			}
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, "@a:x", "D"); len(types) != 0 {
			t.Fatalf("a claimed fallback key is still unused: %v", types)
		}
		// Uploading the same fallback key again keeps it used; a new one
		// is unused.
		if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", FallbackKeys: []storage.OneTimeKey{fb}}); err != nil {
			t.Fatal(err)
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, "@a:x", "D"); len(types) != 0 {
			t.Fatalf("re-uploading a used fallback key made it unused: %v", types)
		}
		fb2 := storage.OneTimeKey{Algorithm: "signed_curve25519", KeyID: "F2", JSON: `{"key":"f2"}`}
		if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", FallbackKeys: []storage.OneTimeKey{fb2}}); err != nil {
			t.Fatal(err)
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, "@a:x", "D"); !slices.Equal(types, []string{"signed_curve25519"}) {
			t.Fatalf("a new fallback key is not unused: %v", types)
		}
		// Keys die with their device.
		if err := s.DeleteDevices(ctx, "@a:x", []string{"D"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ClaimKey(ctx, "@a:x", "D", "signed_curve25519"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("claim after deletion: %v", err)
		}
	})
}

// TestClaimKeyConcurrent: many concurrent claims never hand out one
// one-time key twice, and none falls back while one-time keys remain.
func TestClaimKeyConcurrent(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		openDevice(t, s, "@a:x", "D")
		const keys, claims = 40, 60
		fb := storage.OneTimeKey{Algorithm: "signed_curve25519", KeyID: "FB", JSON: `{"key":"fb"}`}
		if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", OneTimeKeys: otks(keys), FallbackKeys: []storage.OneTimeKey{fb}}); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		got := map[string]int{}
		fallbacks := 0
		var wg sync.WaitGroup
		for range claims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k, err := s.ClaimKey(ctx, "@a:x", "D", "signed_curve25519")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if k.Fallback {
					fallbacks++
					return
				}
				got[k.KeyID]++
			}()
		}
		wg.Wait()
		if len(got) != keys || fallbacks != claims-keys {
			t.Fatalf("%d distinct one-time keys and %d fallbacks, want %d and %d", len(got), fallbacks, keys, claims-keys)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("key %s handed out %d times", id, n)
			}
		}
	})
}

// TestDeleteDeviceDropsE2EERows: a deleted device's keys, signatures,
// inbox and transaction ids go with it, and KeysOfUsers no longer serves
// it.
func TestDeleteDeviceDropsE2EERows(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		openDevice(t, s, "@a:x", "D")
		openDevice(t, s, "@a:x", "E")
		for _, d := range []string{"D", "E"} {
			if _, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: d, DeviceKeys: `{"d":"` + d + `"}`}); err != nil {
				t.Fatal(err)
			}
		}
		sigs := []storage.Signature{
			{OriginUserID: "@a:x", OriginKeyID: "ed25519:SSK", TargetUserID: "@a:x", TargetKeyID: "D", Signature: "s1"},
			{OriginUserID: "@a:x", OriginKeyID: "ed25519:SSK", TargetUserID: "@a:x", TargetKeyID: "E", Signature: "s2"},
		}
		if err := s.AddSignatures(ctx, sigs, nil); err != nil {
			t.Fatal(err)
		}
		txn := storage.ToDeviceTxn{UserID: "@a:x", DeviceID: "D", TxnID: "t"}
		if _, _, err := s.SendToDevice(ctx, txn, []storage.ToDeviceMessage{{UserID: "@a:x", DeviceID: "*", JSON: "m"}}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDevices(ctx, "@a:x", []string{"D"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.KeysOfUsers(ctx, []string{"@a:x"})
		if err != nil {
			t.Fatal(err)
		}
		if devs := got.Devices["@a:x"]; len(devs) != 1 || devs[0].DeviceID != "E" {
			t.Fatalf("devices served after deletion: %+v", devs)
		}
		if len(got.Signatures) != 1 || got.Signatures[0].TargetKeyID != "E" {
			t.Fatalf("signatures after deletion: %+v", got.Signatures)
		}
		if msgs, _ := s.Inbox(ctx, "@a:x", "D", 0, 10); len(msgs) != 0 {
			t.Fatalf("inbox of a deleted device: %v", msgs)
		}
		// A device logging in again under the same id starts afresh: its
		// transaction ids are free.
		openDevice(t, s, "@a:x", "D")
		if _, dup, err := s.SendToDevice(ctx, txn, nil); err != nil || dup {
			t.Fatalf("txn id of a deleted device: dup %v, %v", dup, err)
		}
	})
}

// TestIdentityKeysNeverChange: a device's keys object is fixed once
// uploaded; the rest (algorithms, signatures) may be uploaded again.
func TestIdentityKeysNeverChange(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		openDevice(t, s, "@a:x", "D")
		up := func(js string) error {
			_, err := s.UploadKeys(ctx, storage.KeyUpload{UserID: "@a:x", DeviceID: "D", DeviceKeys: js, OneTimeKeys: otks(1)})
			return err
		}
		if err := up(`{"algorithms":["a"],"keys":{"ed25519:D":"E1"}}`); err != nil {
			t.Fatal(err)
		}
		if err := up(`{"algorithms":["a","b"],"keys":{"ed25519:D":"E1"}}`); err != nil {
			t.Fatalf("same keys, more algorithms: %v", err)
		}
		if err := up(`{"algorithms":["a"],"keys":{"ed25519:D":"E2"}}`); !errors.Is(err, storage.ErrIdentityKeysChanged) {
			t.Fatalf("changed keys: %v", err)
		}
		got, _ := s.DeviceKeysOf(ctx, "@a:x", nil)
		if len(got) != 1 || got[0].KeyJSON != `{"algorithms":["a","b"],"keys":{"ed25519:D":"E1"}}` {
			t.Fatalf("stored: %+v", got)
		}
		// A new device under the same id (after deletion) may have new keys.
		if err := s.DeleteDevices(ctx, "@a:x", []string{"D"}); err != nil {
			t.Fatal(err)
		}
		openDevice(t, s, "@a:x", "D")
		if err := up(`{"algorithms":["a"],"keys":{"ed25519:D":"E3"}}`); err != nil {
			t.Fatalf("new device, same id: %v", err)
		}
	})
}
