package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	dbstorage "github.com/matrix-gouv/homeserver/internal/storage"
	"github.com/matrix-gouv/homeserver/internal/storage/storagetest"
	"github.com/matrix-gouv/homeserver/mediaapi/storage"
)

const (
	hashA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	hashT = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func TestMediaRows(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		m := storage.Media{Origin: "x", MediaID: "m1", UserID: "@a:x", ContentType: "image/png", UploadName: "a.png", Size: 100, SHA256: hashA}
		if err := s.InsertMedia(ctx, m, -1); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertMedia(ctx, m, -1); !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second insert: %v, want ErrExists", err)
		}
		got, err := s.GetMedia(ctx, "x", "m1")
		if err != nil || got.ContentType != "image/png" || got.UploadName != "a.png" || got.Size != 100 || got.SHA256 != hashA ||
			got.UploadedTS == 0 || got.Pending() || got.Quarantined {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := s.GetMedia(ctx, "x", "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("get unknown: %v", err)
		}

		// Quota: 100 used; 150 more passes a quota of 250, 1 more does not.
		m2 := storage.Media{Origin: "x", MediaID: "m2", UserID: "@a:x", Size: 150, SHA256: hashA}
		if err := s.InsertMedia(ctx, m2, 250); err != nil {
			t.Fatalf("insert within quota: %v", err)
		}
		m3 := storage.Media{Origin: "x", MediaID: "m3", UserID: "@a:x", Size: 1, SHA256: hashB}
		if err := s.InsertMedia(ctx, m3, 250); !errors.Is(err, storage.ErrQuotaExceeded) {
			t.Fatalf("insert past quota: %v", err)
		}
		if used, err := s.UserUsage(ctx, "@a:x"); err != nil || used != 250 {
			t.Fatalf("usage %d %v, want 250", used, err)
		}

		// Thumbnails, and deleting: a file shared by two items stays.
		th := storage.Thumbnail{ReqWidth: 32, ReqHeight: 32, Method: "crop", Width: 32, Height: 32, ContentType: "image/png", Size: 10, SHA256: hashT}
		if err := s.PutThumbnail(ctx, "x", "m1", th); err != nil {
			t.Fatal(err)
		}
		if err := s.PutThumbnail(ctx, "x", "m1", th); err != nil {
			t.Fatalf("same thumbnail again: %v", err)
		}
		if got, err := s.GetThumbnail(ctx, "x", "m1", 32, 32, "crop", false); err != nil || got != th {
			t.Fatalf("thumbnail %+v %v", got, err)
		}
		if _, err := s.GetThumbnail(ctx, "x", "m1", 32, 32, "scale", false); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("other method: %v", err)
		}
		if _, err := s.GetThumbnail(ctx, "x", "m1", 32, 32, "crop", true); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("animated: %v", err)
		}
		anim := th
		anim.Animated, anim.SHA256 = true, hashT
		if err := s.PutThumbnail(ctx, "x", "m1", anim); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetThumbnail(ctx, "x", "m1", 32, 32, "crop", true); err != nil || got != anim {
			t.Fatalf("animated thumbnail %+v %v", got, err)
		}
		orphans, err := s.DeleteMedia(ctx, "x", "m1")
		if err != nil || len(orphans) != 1 || orphans[0] != hashT {
			t.Fatalf("delete m1: orphans %v %v, want only the thumbnail's", orphans, err)
		}
		orphans, err = s.DeleteMedia(ctx, "x", "m2")
		if err != nil || len(orphans) != 1 || orphans[0] != hashA {
			t.Fatalf("delete m2: orphans %v %v, want %s", orphans, err, hashA)
		}
		if _, err := s.DeleteMedia(ctx, "x", "m2"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("delete again: %v", err)
		}
		if used, _ := s.HashUsed(ctx, hashA); used {
			t.Fatal("deleted file still used")
		}
	})
}

func TestMediaPending(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		future := time.Now().Add(time.Hour).UnixMilli()
		for _, id := range []string{"p1", "p2"} {
			if err := s.CreatePending(ctx, "x", id, "@a:x", future, 2); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreatePending(ctx, "x", "p3", "@a:x", future, 2); !errors.Is(err, storage.ErrTooManyPending) {
			t.Fatalf("third pending: %v", err)
		}
		if err := s.CreatePending(ctx, "x", "lapsed", "@b:x", time.Now().Add(-time.Minute).UnixMilli(), 2); err != nil {
			t.Fatal(err)
		}
		p, err := s.GetMedia(ctx, "x", "p1")
		if err != nil || !p.Pending() || p.ExpiresTS != future {
			t.Fatalf("pending: %+v %v", p, err)
		}
		done := storage.Media{Origin: "x", MediaID: "p1", UserID: "@a:x", ContentType: "text/plain", Size: 5, SHA256: hashA}
		if err := s.CompletePending(ctx, done, -1); err != nil {
			t.Fatal(err)
		}
		if err := s.CompletePending(ctx, done, -1); !errors.Is(err, storage.ErrAlreadyUploaded) {
			t.Fatalf("second completion: %v", err)
		}
		if err := s.CompletePending(ctx, storage.Media{Origin: "x", MediaID: "none", UserID: "@a:x"}, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("completing unknown: %v", err)
		}
		over := storage.Media{Origin: "x", MediaID: "p2", UserID: "@a:x", Size: 10, SHA256: hashB}
		if err := s.CompletePending(ctx, over, 12); !errors.Is(err, storage.ErrQuotaExceeded) {
			t.Fatalf("completion past quota: %v", err)
		}
		if p, _ := s.GetMedia(ctx, "x", "p1"); p.Pending() || p.ExpiresTS != 0 || p.SHA256 != hashA {
			t.Fatalf("completed: %+v", p)
		}
		lapsed, err := s.ExpiredPending(ctx, time.Now().UnixMilli(), 10)
		if err != nil || len(lapsed) != 1 || lapsed[0].MediaID != "lapsed" {
			t.Fatalf("lapsed: %+v %v", lapsed, err)
		}
	})
}

func TestMediaAdminQueries(t *testing.T) {
	storagetest.DBs(t, func(t *testing.T, db *dbstorage.DB) {
		ctx := context.Background()
		s := storage.New(db)
		for _, m := range []storage.Media{
			{Origin: "x", MediaID: "a1", UserID: "@a:x", Size: 1, SHA256: hashA},
			{Origin: "x", MediaID: "a2", UserID: "@a:x", Size: 1, SHA256: hashB},
			{Origin: "x", MediaID: "b1", UserID: "@b:x", Size: 1, SHA256: hashA},
			{Origin: "remote.org", MediaID: "r1", Size: 1, SHA256: hashB},
		} {
			if err := s.InsertMedia(ctx, m, -1); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.QuarantineUser(ctx, "@a:x"); err != nil || n != 2 {
			t.Fatalf("quarantine user: %d %v", n, err)
		}
		if n, _ := s.QuarantineUser(ctx, "@a:x"); n != 0 {
			t.Fatalf("quarantine again counted %d", n)
		}
		if b1, _ := s.GetMedia(ctx, "x", "b1"); b1.Quarantined {
			t.Fatal("another user's media quarantined")
		}
		if err := s.SetQuarantined(ctx, "x", "a1", false); err != nil {
			t.Fatal(err)
		}
		if err := s.SetQuarantined(ctx, "x", "zz", true); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("quarantine unknown: %v", err)
		}
		page, total, err := s.UserMedia(ctx, "@a:x", 0, 1)
		if err != nil || total != 2 || len(page) != 1 {
			t.Fatalf("user media: %+v %d %v", page, total, err)
		}
		byHash, err := s.MediaByHash(ctx, hashA)
		if err != nil || len(byHash) != 2 {
			t.Fatalf("by hash: %+v %v", byHash, err)
		}
		old, err := s.RemoteMediaBefore(ctx, "x", time.Now().Add(time.Minute).UnixMilli(), 10)
		if err != nil || len(old) != 1 || old[0].MediaID != "r1" {
			t.Fatalf("old remote media: %+v %v", old, err)
		}
		if err := s.TouchMedia(ctx, "remote.org", "r1", time.Now().Add(time.Hour).UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if old, _ := s.RemoteMediaBefore(ctx, "x", time.Now().Add(time.Minute).UnixMilli(), 10); len(old) != 0 {
			t.Fatalf("touched media still old: %+v", old)
		}
	})
}
