package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/matrix-gouv/homeserver/homeserver/storage"
	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
)

func TestBackupSessionBetter(t *testing.T) {
	base := storage.BackupSession{FirstMessageIndex: 5, ForwardedCount: 1, IsVerified: false}
	for _, tc := range []struct {
		name string
		new  storage.BackupSession
		want bool
	}{
		{"verified beats unverified", storage.BackupSession{FirstMessageIndex: 9, ForwardedCount: 9, IsVerified: true}, true},
		{"lower index wins", storage.BackupSession{FirstMessageIndex: 4, ForwardedCount: 9}, true},
		{"higher index loses", storage.BackupSession{FirstMessageIndex: 6, ForwardedCount: 0}, false},
		{"same index, fewer forwards wins", storage.BackupSession{FirstMessageIndex: 5, ForwardedCount: 0}, true},
		{"same index, more forwards loses", storage.BackupSession{FirstMessageIndex: 5, ForwardedCount: 2}, false},
		{"a tie keeps the old one", base, false},
	} {
		if got := tc.new.Better(base); got != tc.want {
			t.Errorf("%s: Better = %v", tc.name, got)
		}
	}
	if (storage.BackupSession{FirstMessageIndex: 0}).Better(storage.BackupSession{FirstMessageIndex: 9, IsVerified: true}) {
		t.Error("unverified beat verified")
	}
}

func TestKeyBackup(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		const u = "@a:x"
		if _, err := s.BackupVersionOf(ctx, u, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("no version yet: %v", err)
		}
		v1, err := s.CreateBackupVersion(ctx, u, "alg", `{"a":1}`)
		if err != nil || v1 != 1 {
			t.Fatalf("create: %d %v", v1, err)
		}
		sess := storage.BackupSession{RoomID: "!r:x", SessionID: "S", FirstMessageIndex: 3, ForwardedCount: 0, SessionData: `{"d":1}`}
		etag, count, err := s.PutBackupSessions(ctx, u, v1, []storage.BackupSession{sess})
		if err != nil || etag != 1 || count != 1 {
			t.Fatalf("put: %d %d %v", etag, count, err)
		}
		// A worse copy changes nothing, not even the etag.
		worse := sess
		worse.FirstMessageIndex, worse.SessionData = 7, `{"d":2}`
		if etag, count, err = s.PutBackupSessions(ctx, u, v1, []storage.BackupSession{worse}); err != nil || etag != 1 || count != 1 {
			t.Fatalf("worse: %d %d %v", etag, count, err)
		}
		better := sess
		better.IsVerified, better.SessionData = true, `{"d":3}`
		if etag, _, err = s.PutBackupSessions(ctx, u, v1, []storage.BackupSession{better}); err != nil || etag != 2 {
			t.Fatalf("better: %d %v", etag, err)
		}
		got, err := s.BackupSessions(ctx, u, v1, "!r:x", "S")
		if err != nil || len(got) != 1 || got[0].SessionData != `{"d":3}` {
			t.Fatalf("read: %+v %v", got, err)
		}
		// A new version becomes current: the old one refuses uploads but
		// can still be read.
		v2, err := s.CreateBackupVersion(ctx, u, "alg", `{"a":2}`)
		if err != nil || v2 != 2 {
			t.Fatalf("create 2: %d %v", v2, err)
		}
		if _, _, err := s.PutBackupSessions(ctx, u, v1, []storage.BackupSession{sess}); !errors.Is(err, storage.ErrWrongBackupVersion) {
			t.Fatalf("put to old version: %v", err)
		}
		if _, _, err := s.PutBackupSessions(ctx, u, 99, nil); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("put to unknown version: %v", err)
		}
		if got, _ := s.BackupSessions(ctx, u, v1, "", ""); len(got) != 1 {
			t.Fatalf("old version unreadable: %+v", got)
		}
		// Deletion: v2 goes, v1 is current again, and numbers are not
		// reused.
		if err := s.DeleteBackupVersion(ctx, u, v2); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteBackupVersion(ctx, u, v2); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if cur, err := s.BackupVersionOf(ctx, u, 0); err != nil || cur.Version != v1 || cur.Count != 1 || cur.Etag != 2 {
			t.Fatalf("current after deletion: %+v %v", cur, err)
		}
		if v3, _ := s.CreateBackupVersion(ctx, u, "alg", `{}`); v3 != 3 {
			t.Fatalf("version number reused: %d", v3)
		}
		// Deleting keys moves the etag and the count.
		if etag, count, err = s.DeleteBackupSessions(ctx, u, v1, "!r:x", ""); err != nil || etag != 3 || count != 0 {
			t.Fatalf("delete keys: %d %d %v", etag, count, err)
		}
		if err := s.UpdateBackupAuthData(ctx, u, v1, `{"b":1}`); err != nil {
			t.Fatal(err)
		}
		if b, _ := s.BackupVersionOf(ctx, u, v1); b.AuthData != `{"b":1}` || b.Etag != 3 {
			t.Fatalf("after update: %+v", b)
		}
	})
}

// TestDeactivateDropsE2EE: a deactivated account keeps no cross-signing
// keys, signatures or backed-up keys.
func TestDeactivateDropsE2EE(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		const u = "@a:x"
		if err := s.CreateAccount(ctx, storage.NewAccount{UserID: u, Localpart: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetCrossSigningKeys(ctx, u, "M", map[string]string{storage.KeyTypeMaster: `{}`}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddSignatures(ctx, []storage.Signature{{OriginUserID: u, OriginKeyID: "ed25519:U", TargetUserID: "@b:x", TargetKeyID: "M2", Signature: "s"}}, nil); err != nil {
			t.Fatal(err)
		}
		v, _ := s.CreateBackupVersion(ctx, u, "alg", `{}`)
		if _, _, err := s.PutBackupSessions(ctx, u, v, []storage.BackupSession{{RoomID: "!r:x", SessionID: "S", SessionData: `{}`}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Deactivate(ctx, u); err != nil {
			t.Fatal(err)
		}
		if cs, _ := s.CrossSigningKeys(ctx, u); len(cs) != 0 {
			t.Errorf("cross-signing keys kept: %v", cs)
		}
		if k, _ := s.KeysOfUsers(ctx, []string{"@b:x"}); len(k.Signatures) != 0 {
			t.Errorf("signatures kept: %v", k.Signatures)
		}
		if _, err := s.BackupVersionOf(ctx, u, 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("backup kept: %v", err)
		}
	})
}
